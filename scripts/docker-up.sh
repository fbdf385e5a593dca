#!/usr/bin/env bash
# Make sure a Docker engine answers and the test images exist (used by .ci/run; safe to run again).
#   - installs Debian's docker.io (and busybox-static for the test image) when missing;
#   - starts dockerd in the background when no engine answers (there is no systemd on these machines);
#   - builds busybox:latest locally from Debian's busybox-static (no registry is reachable).
# Exit status non-zero when the engine could not be started: CI must fail then, not skip the container tests.
set -euo pipefail

need_apt=()
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
[ -x /bin/busybox ] || command -v busybox >/dev/null 2>&1 || need_apt+=(busybox-static)
if [ ${#need_apt[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    # In a session of its own: a caller that ends by killing its process group (a CI step, an agent's shell job)
    # must not take the engine with it, and the containers of the tests that follow.
    setsid nohup dockerd >/tmp/dockerd.log 2>&1 < /dev/null &
    for _ in $(seq 1 100); do
        docker info >/dev/null 2>&1 && break
        sleep 0.2
    done
    docker info >/dev/null 2>&1 || { echo "docker-up: dockerd did not start; see /tmp/dockerd.log" >&2; tail -20 /tmp/dockerd.log >&2; exit 1; }
fi

if ! docker image inspect busybox:latest >/dev/null 2>&1; then
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root"
    chmod 1777 "$root/tmp"
    bb=$(command -v busybox)
    cp "$bb" "$root/bin/busybox"
    for applet in $("$bb" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' - busybox:latest >/dev/null
fi
echo "docker-up: engine $(docker version --format '{{.Server.Version}}') ready; busybox:latest present"
