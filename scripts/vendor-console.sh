#!/usr/bin/env bash
# Re-vendor the web console's JavaScript libraries from the npm registry (docs/adr/0020-web-console.md).
# Pinned versions; each file is copied as published (already built and minified by its authors) with its licence.
# Run it after changing a version, commit the result. No Node is needed to install or run batchplane.
set -euo pipefail
AWS4FETCH=1.0.20
DAGRE=3.1.4
cd "$(dirname "$0")/.."
out=chalicelib/console_web/static/assets/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "aws4fetch@$AWS4FETCH" "@dagrejs/dagre@$DAGRE" >/dev/null)
mkdir -p "$tmp/a" "$tmp/d" "$out"
tar xzf "$tmp/aws4fetch-$AWS4FETCH.tgz" -C "$tmp/a"
tar xzf "$tmp/dagrejs-dagre-$DAGRE.tgz" -C "$tmp/d"
cp "$tmp/a/package/dist/aws4fetch.esm.mjs" "$out/aws4fetch.esm.mjs"
cp "$tmp/a/package/LICENSE" "$out/aws4fetch.LICENSE.txt"
# dagre's ESM build ends with a sourceMappingURL comment; the map is not shipped, so drop the comment.
grep -v '^//# sourceMappingURL=' "$tmp/d/package/dist/dagre.esm.js" >"$out/dagre.esm.js"
cp "$tmp/d/package/LICENSE" "$out/dagre.LICENSE.txt"
cp "$tmp/d/package/dist/dagre.esm.js.LEGAL.txt" "$out/dagre.esm.js.LEGAL.txt"
printf 'aws4fetch %s (npm)\n@dagrejs/dagre %s (npm)\nre-vendor: scripts/vendor-console.sh\n' "$AWS4FETCH" "$DAGRE" >"$out/VERSIONS.txt"
echo "vendored into $out:"; cat "$out/VERSIONS.txt"
