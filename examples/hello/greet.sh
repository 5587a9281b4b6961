#!/bin/sh
echo "hello, ${1:-dockyard} (version ${APP_VERSION:-dev})"
