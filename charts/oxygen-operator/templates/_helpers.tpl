{{/* Names and labels shared by every template. */}}

{{- define "oxygen.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "oxygen.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "oxygen.selectorLabels" -}}
app.kubernetes.io/name: {{ include "oxygen.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "oxygen.labels" -}}
{{ include "oxygen.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "oxygen.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "oxygen.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "oxygen.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "oxygen.workerImage" -}}
{{- if .Values.worker.image.repository -}}
{{- printf "%s:%s" .Values.worker.image.repository (default .Chart.AppVersion .Values.worker.image.tag) -}}
{{- else -}}
{{- include "oxygen.image" . -}}
{{- end -}}
{{- end -}}

{{/* The `restricted` Pod Security Standard for a container. */}}
{{- define "oxygen.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsUser }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Namespaces whose webhook token Secrets the operator may get, as a JSON list; [] means every
namespace (only when it watches every namespace). Fails on a namespace it does not watch. */}}
{{- define "oxygen.webhookNamespaces" -}}
{{- $listed := .Values.webhook.namespaces | default list -}}
{{- range $listed -}}
{{- if and $.Values.watchNamespaces (not (has . $.Values.watchNamespaces)) -}}
{{- fail (printf "webhook.namespaces: %s is not in watchNamespaces" .) -}}
{{- end -}}
{{- end -}}
{{- if $listed -}}
{{- toJson $listed -}}
{{- else -}}
{{- toJson (.Values.watchNamespaces | default list) -}}
{{- end -}}
{{- end -}}
