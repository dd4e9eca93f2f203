# keygate container image: a static binary on distroless, run as non-root.
#
#   docker build -t keygate .
#   docker run --rm -p 4000:4000 --env-file .env keygate
#
# Keys never go into the image: pass them at run time (--env-file, or
# env_file in docker-compose.yml). configs/check.sh builds the binary with the
# exact `go build` line below, so keep that command on one line.

# Build stage: the Go toolchain pinned to go.mod's version.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
# Modules first, so editing the source does not invalidate the download layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/keygate .

# Final stage: no shell, no package manager; CA certificates for the upstream's
# TLS and the nonroot user (uid 65532) come with the image.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/keygate /keygate
USER nonroot:nonroot
EXPOSE 4000
# Exec form: the image has no shell. The subcommand asks /healthz on $PORT.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/keygate", "healthcheck"]
ENTRYPOINT ["/keygate"]
