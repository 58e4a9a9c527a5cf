#!/usr/bin/env bash
# Fetch the third-party files Port serves (port/assets/static/vendor) from the npm
# registry at the versions port/assets/VENDORED.md lists, and copy them in place.
set -euo pipefail
cd "$(dirname "$0")/.."
out=port/assets/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent \
  graphiql@3.8.3 @graphiql/plugin-explorer@1.0.2 react@18.2.0 react-dom@18.2.0 \
  js-cookie@3.0.5 htmx.org@2.0.11)
m=$work/node_modules
cp "$m/graphiql/graphiql.min.js" "$m/graphiql/graphiql.min.css" "$out/"
cp "$m/@graphiql/plugin-explorer/dist/index.umd.js" "$out/graphiql-plugin-explorer.umd.js"
cp "$m/@graphiql/plugin-explorer/dist/style.css" "$out/graphiql-plugin-explorer.css"
cp "$m/react/umd/react.production.min.js" "$m/react-dom/umd/react-dom.production.min.js" "$out/"
cp "$m/js-cookie/dist/js.cookie.min.js" "$m/htmx.org/dist/htmx.min.js" "$out/"
echo "vendored into $out; check port/assets/VENDORED.md still says what is there"
