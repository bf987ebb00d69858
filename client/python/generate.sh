#!/usr/bin/env bash
# Regenerates the Python gRPC stubs of proto/fernet/v1/fernet.proto, and the
# messages of client/python/proto/fernet_sidecar/rpc.proto (the google.rpc
# error details the client reads), into fernet_sidecar/_pb/, where they are
# committed. A Go test
# (client/python_stubs_test.go) fails when they drift from what this makes.
#
#   client/python/generate.sh [OUT_DIR]     (OUT_DIR defaults to client/python)
#
# It uses Debian bookworm's protoc 3.21.12 and gRPC Python plugin 1.51.1
# (apt-get install protobuf-compiler protobuf-compiler-grpc), the versions
# of python3-protobuf and python3-grpcio. Debian's python3-grpc-tools cannot
# be used: its protoc is 3.5.1, which rejects proto3 `optional`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$here}
protoc=${PROTOC:-/usr/bin/protoc}
plugin=${GRPC_PYTHON_PLUGIN:-/usr/bin/grpc_python_plugin}
want="libprotoc 3.21.12"

for tool in "$protoc" "$plugin"; do
	if [[ ! -x $tool ]]; then
		echo "generate.sh: $tool not found: apt-get install protobuf-compiler protobuf-compiler-grpc" >&2
		exit 1
	fi
done
if [[ "$("$protoc" --version)" != "$want" ]]; then
	echo "generate.sh: $protoc is $("$protoc" --version), want $want (Debian bookworm's protobuf-compiler): other versions generate different code" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$protoc" -I "$root/proto" --python_out="$tmp" --grpc_python_out="$tmp" \
	--plugin=protoc-gen-grpc_python="$plugin" fernet/v1/fernet.proto
"$protoc" -I "$here/proto" --python_out="$tmp" fernet_sidecar/rpc.proto

mkdir -p "$out/fernet_sidecar/_pb"
cp "$tmp/fernet/v1/fernet_pb2.py" "$out/fernet_sidecar/_pb/fernet_pb2.py"
cp "$tmp/fernet_sidecar/rpc_pb2.py" "$out/fernet_sidecar/_pb/rpc_pb2.py"
# The plugin imports the messages as the top-level package fernet.v1; here
# they are the sibling module.
sed 's/^from fernet\.v1 import fernet_pb2 as /from . import fernet_pb2 as /' \
	"$tmp/fernet/v1/fernet_pb2_grpc.py" >"$out/fernet_sidecar/_pb/fernet_pb2_grpc.py"
if ! grep -q '^from \. import fernet_pb2 as ' "$out/fernet_sidecar/_pb/fernet_pb2_grpc.py"; then
	echo "generate.sh: the plugin's import of fernet_pb2 changed; fix the sed above" >&2
	exit 1
fi
