#!/bin/sh
# BusyBox udhcpc hook for 6rd: call it from the udhcpc script with the same argument, e.g. as the
# last line of /usr/share/udhcpc/default.script:
#     /usr/share/tun6in4/udhcpc-6rd.sh "$@"
# and have udhcpc ask for option 212, which it then exports as $ip6rd:
#     udhcpc -i eth0 -O ip6rd
# Set TUN6IN4_6RD to where contrib/tun6in4-6rd is installed (default: beside this file); it runs
# tun6in4 from PATH (`npm install -g tun6in4` as root).
here=$(dirname "$0")
hook=${TUN6IN4_6RD:-$here/tun6in4-6rd}
case "$1" in
bound | renew) exec "$hook" up "$interface" "${ip:-}" "${ip6rd:-}" ;;
deconfig | leasefail | nak) exec "$hook" down "$interface" ;;
esac
