#!/bin/sh
# Makes the local git repository build.yaml builds from: /tmp/build-hello/repo, with this
# example's function/ directory committed on branch main.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=${1:-/tmp/build-hello/repo}
rm -rf "$repo"
mkdir -p "$repo"
cp -r "$here/function" "$repo/function"
cd "$repo"
git init --quiet --initial-branch=main
git add function
git -c user.name=example -c user.email=example@example.com commit --quiet -m "hello function"
echo "$repo"
