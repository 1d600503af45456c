-- Argo CD custom health check for oxygen.dev/Run (Lua 5.1, as Argo CD's gopher-lua runs it).
-- Install it under resource.customizations in argocd-cm:
--   resource.customizations.health.oxygen.dev_Run: |
--     <this file>
-- A Run is Progressing until the operator has observed its latest generation and while it is
-- queued or running; Healthy when every item succeeded; Degraded when the run failed, completed
-- with failed items or was canceled; Suspended while paused.
local hs = {}

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function counts(status)
  return string.format("%s/%s items succeeded, %s failed",
    tostring(status.itemsSucceeded or 0), tostring(status.itemsTotal or 0), tostring(status.itemsFailed or 0))
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to pick up the run"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = condition(status, "Stalled")
local phase = status.phase
if phase == "failed" or (stalled ~= nil and stalled.status == "True") then
  hs.status = "Degraded"
  hs.message = "Run failed: " .. tostring(status.message or (stalled and stalled.message) or counts(status))
elseif phase == "succeeded" then
  hs.status = "Healthy"
  hs.message = "Run succeeded: " .. counts(status)
elseif phase == "completed" then
  hs.status = "Degraded"
  hs.message = "Run completed with failed items: " .. counts(status)
elseif phase == "canceled" then
  hs.status = "Degraded"
  hs.message = "Run canceled: " .. counts(status)
elseif phase == "paused" then
  hs.status = "Suspended"
  hs.message = "Run paused: " .. counts(status)
else
  hs.status = "Progressing"
  hs.message = "Run " .. tostring(phase) .. ": " .. counts(status)
end
return hs
