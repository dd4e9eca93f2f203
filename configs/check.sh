#!/usr/bin/env bash
# Checks the deployment files without a Docker engine:
#   - Prometheus config, alert rules and their unit tests (promtool)
#   - the dashboard's PromQL parses (promtool; the Go tests parse it too, with
#     Prometheus' parser, and check it is what ./configs/dashboard generates)
#   - docker-compose.yml (docker-compose config) and the paths it mounts
#   - the Dockerfile lint and dashboard tests (go test ./configs/...)
#   - the binary builds with the Dockerfile's own `go build` line
#
# Needs: promtool, docker-compose, jq, go. On Debian:
#   apt-get install -y --no-install-recommends prometheus docker-compose jq
#
# Usage: bash configs/check.sh   (from anywhere)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

missing=()
for tool in promtool docker-compose jq go; do
	command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
	echo "check.sh: missing ${missing[*]}; on Debian: apt-get install -y prometheus docker-compose jq (go from go.dev)" >&2
	exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

step() { printf '\n== %s\n' "$*"; }

step "promtool check config"
promtool check config configs/prometheus/prometheus.yml

step "promtool check rules"
promtool check rules configs/prometheus/alerts.yml

step "promtool test rules"
promtool test rules configs/prometheus/alerts_test.yml

step "dashboard PromQL parses"
# Each panel query becomes a recording rule, with Grafana's variables
# replaced by values Prometheus accepts, so promtool parses it.
{
	echo 'groups:'
	echo '  - name: dashboard'
	echo '    rules:'
	jq -r '[.panels[] | .targets[]? | .expr] | to_entries[]
		| "      - record: dashboard:expr_\(.key)\n        expr: \(.value
			| gsub("\\$__rate_interval|\\$__interval|\\$__range"; "5m")
			| gsub("\\$key"; ".+")
			| tojson)"' configs/grafana/dashboards/keygate.json
} >"$tmp/dashboard_rules.yml"
promtool check rules "$tmp/dashboard_rules.yml"

step "docker-compose config"
# env_file: .env must exist, and Debian's docker-compose (1.29) has no way to
# make it optional; --env-file only feeds ${VAR} interpolation. So the check
# runs with .env.example as .env in a scratch project directory (never the
# developer's real .env), then maps the scratch paths back to the repository
# to check that everything the file builds or mounts exists.
cp .env.example "$tmp/.env"
compose=(docker-compose --project-directory "$tmp" -f "$root/docker-compose.yml")
"${compose[@]}" config -q
services=$("${compose[@]}" config --services | sort | tr '\n' ' ')
if [[ $services != "grafana keygate lb prometheus redis " ]]; then
	echo "docker-compose.yml services: $services; want grafana keygate lb prometheus redis" >&2
	exit 1
fi
# Bind sources and the build context print as absolute paths under $tmp.
"${compose[@]}" config | grep -oE "$tmp(/[^:[:space:]]*)?" | sort -u | while read -r path; do
	rel=${path#"$tmp"}
	if [[ ! -e $root$rel ]]; then
		echo "docker-compose.yml uses .${rel} which does not exist" >&2
		exit 1
	fi
	echo "exists: .${rel:-/}"
done

step "go vet + go test ./configs/... (Dockerfile, .env.example, dashboard generated, PromQL parsed)"
go vet ./configs/...
go test -count=1 ./configs/...

step "go build with the Dockerfile's flags"
# The one RUN line that builds (TestDockerfile insists there is exactly one),
# run as the builder would (/bin/sh -c) from the repository root, which the
# Dockerfile copies to its WORKDIR; only the output path changes. The image's
# toolchain never downloads another (GOTOOLCHAIN=local) and sees no .git
# (.dockerignore), hence no VCS stamping here either.
mapfile -t builds < <(grep -E '^RUN .*go build' Dockerfile)
if ((${#builds[@]} != 1)); then
	echo "Dockerfile: want exactly one RUN line with go build, found ${#builds[@]}" >&2
	exit 1
fi
cmd=${builds[0]#RUN }
cmd=$(sed -E "s#(^| )-o [^ ]+# -o $tmp/keygate#" <<<"$cmd")
if [[ $cmd != *"-o $tmp/keygate"* ]]; then
	echo "Dockerfile: the go build line has no -o <path>: ${builds[0]}" >&2
	exit 1
fi
echo "+ $cmd"
GOTOOLCHAIN=local GOFLAGS=-buildvcs=false sh -c "$cmd"
settings=$(go version -m "$tmp/keygate")
for want in 'CGO_ENABLED=0' '-trimpath=true'; do
	if ! grep -qF -- "$want" <<<"$settings"; then
		echo "built binary lacks build setting $want:" >&2
		echo "$settings" >&2
		exit 1
	fi
done
echo "ok: $(grep -E 'CGO_ENABLED|trimpath' <<<"$settings" | tr -s '\t ' ' ' | tr '\n' ';')"

step "all deployment checks passed"
