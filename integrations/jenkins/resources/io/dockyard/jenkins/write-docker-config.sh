#!/bin/sh -e
# Writes $DOCKYARD_AUTH_DIR/config.json (docker's format) for one registry from a username/password credential.
# The shebang runs this without the -x trace Jenkins gives `sh` scripts, which would print printf's expanded
# arguments; printf is a shell builtin and base64 reads stdin, so neither the password nor its base64 form is
# ever on a command line (Jenkins masks the password in the log, but not its base64 encoding).
umask 077
auth=$(printf '%s:%s' "$DOCKYARD_REGISTRY_USER" "$DOCKYARD_REGISTRY_PASSWORD" | base64 | tr -d '\n')
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$DOCKYARD_REGISTRY" "$auth" > "$DOCKYARD_AUTH_DIR/config.json"
