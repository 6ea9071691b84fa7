#!/bin/sh
# The image's entrypoint: runs `airvoice ARGS` as the unprivileged user airvoice (uid 1000).
#
# RunPod mounts a network volume at /workspace owned by root, hiding what the image put there,
# so uid 1000 could not create $HF_HOME on it. Started as root (the image's default user), this
# script creates $HF_HOME, gives what is not already airvoice's to airvoice (nothing else on the
# volume is touched), and then drops root for good: setpriv sets the user, its groups and
# no_new_privs, and exec's airvoice, which becomes the container's main process and gets its
# signals. Started as another user (`--user`), it runs airvoice as that user, and says so when
# $HF_HOME cannot be written.
set -eu

user=airvoice
hf_home=${HF_HOME:-/workspace/hf}

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$hf_home"
    # -h: a symbolic link is changed itself, never what it points to.
    find "$hf_home" ! -user "$user" -exec chown -h "$user:$user" {} +
    HOME=$(getent passwd "$user" | cut -d: -f6)
    export HOME
    exec setpriv --reuid="$user" --regid="$user" --init-groups --no-new-privs -- airvoice "$@"
fi

if ! mkdir -p "$hf_home" 2>/dev/null || [ ! -w "$hf_home" ]; then
    echo "airvoice-entrypoint: the model cache $hf_home is not writable by uid $(id -u)," \
        "so models cannot be downloaded there. Start the container as root (the image's" \
        "default: it gives $hf_home to the airvoice user, then drops root), or make that" \
        "directory writable by uid $(id -u)." >&2
fi
exec airvoice "$@"
