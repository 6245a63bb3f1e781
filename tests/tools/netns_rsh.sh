#!/bin/sh
# netns_rsh.sh — an rsh agent for OpenMPI's mpirun that "logs in" to a network namespace of this
# machine instead of another machine, so that a multi-host run can be rehearsed on one machine
# (tests/python/test_multihost.py, docs/multi-node.md).
#
#   mpirun --mca plm_rsh_agent tests/tools/netns_rsh.sh --host ADDR_A:1,ADDR_B:1 ...
#
# mpirun calls it as ssh would be called: `netns_rsh.sh [options] HOST COMMAND...`, to start its
# daemon (orted) on HOST. MOCO_NETNS_HOSTS (in mpirun's environment) maps addresses to namespaces,
# "ADDR=NETNS ADDR=NETNS ..."; the command runs in NETNS (`ip netns exec`, needs root) inside a
# new UTS namespace whose hostname is NETNS, so the ranks there report their own host name.
# An address without a namespace is an error (exit 255, as ssh exits when it cannot connect).
while [ $# -gt 0 ]; do
    case $1 in
    -*) shift ;;            # ssh-style options (plm_rsh_args): nothing to do with them here
    *) break ;;
    esac
done
host=$1
shift
for pair in $MOCO_NETNS_HOSTS; do
    if [ "${pair%%=*}" = "$host" ]; then
        ns=${pair#*=}
        exec ip netns exec "$ns" unshare --uts sh -c "hostname '$ns' && $*"
    fi
done
echo "netns_rsh.sh: no network namespace for host '$host' (MOCO_NETNS_HOSTS='$MOCO_NETNS_HOSTS')" >&2
exit 255
