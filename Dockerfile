# One image for the operator (`oxygen operator`) and the shard workers (`oxygen worker`).
# Build and load it into kind:  docker build -t oxygen-operator:0.1.0 . && kind load docker-image oxygen-operator:0.1.0
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# A wheel of the package and its dependencies, installed into a prefix copied into the final stage
# (no build tools, caches or sources end up in the image). pip byte-compiles at install time, so the
# read-only root filesystem needs no writable __pycache__. The kubernetes client ships an unused
# asyncio copy of itself (68 of the 161 MB of dependencies); neither we nor kopf import it.
RUN pip install --no-cache-dir --prefix=/install . \
 && rm -rf /install/lib/python3.11/site-packages/kubernetes/aio

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /install /usr/local
# Non-root, numeric (the `restricted` Pod Security Standard's runAsNonRoot check needs a number).
USER 65532:65532
WORKDIR /tmp
# metrics, liveness, webhooks, run pages
EXPOSE 8080 8081 8082 8083
ENTRYPOINT ["oxygen"]
CMD ["operator"]
