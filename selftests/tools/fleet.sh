#!/bin/sh
# SPDX-License-Identifier: MIT
#
# selftests/tools/fleet.sh: ten ssh "hosts" on 127.0.2.x for the tool's
# fleet test, served by one real sshd listening on several loopback
# addresses (Linux routes all of 127.0.0.0/8 to lo), named through an
# ssh_config of their own:
#
#   host01..host06   127.0.2.1-6    up, user mgfleet, the client key
#   host07, host08   127.0.2.7-8    down: nothing listens there
#   host09           127.0.2.9      up, but known_hosts holds another key
#   host10           127.0.2.10     up, user mgnosuchuser (does not exist)
#   host11           127.0.2.11     whatever the test puts there (a listener
#                                   that never answers: a hung host)
#   host12           127.0.2.12     up, user mgfleet, served by a second sshd
#                                   that admits few handshakes at once
#                                   (MaxStartups 2:100:3: a third one not
#                                   yet logged in is dropped) and logs each
#                                   connection and drop (LogLevel VERBOSE,
#                                   DIR/sshd12.log)
#
#   fleet.sh start DIR     make DIR (keys, sshd_config, known_hosts,
#                          ssh_config; bastion_config for hops behind
#                          one of these hosts), start sshd; prints
#                          "PORT PID".
#
# The user mgfleet (made here when missing; password "mgfleet-pw", as
# sshd refuses locked accounts even for key logins) is this test's alone:
# the ssh transport tests empty and remount mgtest's image caches, and
# other checks may run those at the same time on this machine.
#   fleet.sh stop DIR      stop that sshd and remove DIR
#
#   fleet.sh start-many DIR N [own-users]
#                          for `make bench-fleet` and `make bench-files`:
#                          N hosts fh001..fhN, each its own sshd with
#                          OpenSSH's defaults (MaxStartups 10:30:100) on
#                          127.0.3.1..N, user mgfleet, the same client
#                          key; DIR/ssh_config names them. With
#                          own-users, host fhNNN logs in as user mgfNNN
#                          (made when missing), so that each "host" has
#                          a home of its own, as real hosts have a disk
#                          each. Prints "PORT". Stopped by `stop`.
set -eu

cmd=${1:-}
dir=${2:-}

start() {
	[ -n "$dir" ] || { echo "usage: fleet.sh start DIR" >&2; exit 2; }
	if ! id mgfleet >/dev/null 2>&1; then
		useradd -m -s /bin/sh mgfleet
	fi
	echo 'mgfleet:mgfleet-pw' | chpasswd
	mkdir -p "$dir"
	chmod 0755 "$dir"
	ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519"
	ssh-keygen -q -t ed25519 -N '' -f "$dir/other_ed25519"
	ssh-keygen -q -t ed25519 -N '' -f "$dir/id_ed25519"
	cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
	chmod 0644 "$dir/authorized_keys"
	mkdir -p /run/sshd
	chmod 0755 /run/sshd
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.2.1",0)); print(s.getsockname()[1])')
	{
		for i in 1 2 3 4 5 6 9 10; do
			echo "ListenAddress 127.0.2.$i:$port"
		done
		cat <<EOC
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
StrictModes no
PermitRootLogin no
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
LogLevel ERROR
MaxStartups 100:30:200
MaxSessions 100
EOC
	} >"$dir/sshd_config"
	sed -e '/^ListenAddress/d' -e '/^MaxStartups/d' -e '/^LogLevel/d' \
		-e "s|^PidFile .*|PidFile $dir/sshd12.pid|" "$dir/sshd_config" >"$dir/sshd12_config"
	{
		echo "ListenAddress 127.0.2.12:$port"
		echo "MaxStartups 2:100:3"
		echo "LogLevel VERBOSE"
	} >>"$dir/sshd12_config"
	: >"$dir/known_hosts"
	for i in 1 2 3 4 5 6 7 8 9 10 12; do
		key=host_ed25519
		[ "$i" = 9 ] && key=other_ed25519
		printf '[127.0.2.%s]:%s %s\n' "$i" "$port" \
			"$(cut -d' ' -f1,2 "$dir/$key.pub")" >>"$dir/known_hosts"
	done
	{
		# first value wins in ssh_config: the exceptions come first
		printf 'Host host10\n  User mgnosuchuser\n'
		for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
			printf 'Host host%02d\n  HostName 127.0.2.%s\n' "$i" "$i"
		done
		cat <<EOC
Host host*
  Port $port
  User mgfleet
  IdentityFile $dir/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  StrictHostKeyChecking yes
  ConnectTimeout 20
EOC
	} >"$dir/ssh_config"
	chmod 0600 "$dir/ssh_config"
	# Behind a bastion (-t host12/host01), ssh runs there as mgfleet: a
	# copy of the client key that mgfleet owns, and a config naming it
	# that mgfleet can read (bastion_config; known_hosts readable too).
	cp "$dir/id_ed25519" "$dir/bastion_key"
	chown mgfleet "$dir/bastion_key"
	chmod 0600 "$dir/bastion_key"
	chmod 0644 "$dir/known_hosts"
	sed "s|^  IdentityFile .*|  IdentityFile $dir/bastion_key|" "$dir/ssh_config" \
		>"$dir/bastion_config"
	chmod 0644 "$dir/bastion_config"
	/usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
	i=0
	while [ ! -s "$dir/sshd.pid" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
	[ -s "$dir/sshd.pid" ] || { echo "sshd did not start:" >&2; cat "$dir/sshd.log" >&2; exit 1; }
	/usr/sbin/sshd -f "$dir/sshd12_config" -E "$dir/sshd12.log"
	i=0
	while [ ! -s "$dir/sshd12.pid" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
	[ -s "$dir/sshd12.pid" ] || { echo "sshd (host12) did not start:" >&2; cat "$dir/sshd12.log" >&2; exit 1; }
	echo "$port $(cat "$dir/sshd.pid")"
}

start_many() {
	n=${3:-}
	own=${4:-}
	[ -n "$dir" ] && [ -n "$n" ] && [ "$n" -ge 1 ] && [ "$n" -le 250 ] &&
		{ [ -z "$own" ] || [ "$own" = own-users ]; } ||
		{ echo "usage: fleet.sh start-many DIR N (1..250) [own-users]" >&2; exit 2; }
	if ! id mgfleet >/dev/null 2>&1; then
		useradd -m -s /bin/sh mgfleet
	fi
	echo 'mgfleet:mgfleet-pw' | chpasswd
	if [ -n "$own" ]; then
		i=1
		while [ "$i" -le "$n" ]; do
			u=$(printf 'mgf%03d' "$i")
			id "$u" >/dev/null 2>&1 || useradd -m -s /bin/sh "$u"
			# sshd refuses locked accounts even for key logins
			echo "$u:$u-pw" | chpasswd
			i=$((i+1))
		done
	fi
	mkdir -p "$dir"
	chmod 0755 "$dir"
	ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519"
	ssh-keygen -q -t ed25519 -N '' -f "$dir/id_ed25519"
	cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
	chmod 0644 "$dir/authorized_keys"
	mkdir -p /run/sshd
	chmod 0755 /run/sshd
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.3.1",0)); print(s.getsockname()[1])')
	: >"$dir/known_hosts"
	: >"$dir/ssh_config"
	i=1
	while [ "$i" -le "$n" ]; do
		h=$(printf 'fh%03d' "$i")
		cat >"$dir/sshd_$h.config" <<EOC
ListenAddress 127.0.3.$i:$port
HostKey $dir/host_ed25519
PidFile $dir/sshd_$h.pid
AuthorizedKeysFile $dir/authorized_keys
StrictModes no
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
LogLevel ERROR
EOC
		printf '[127.0.3.%s]:%s %s\n' "$i" "$port" \
			"$(cut -d' ' -f1,2 "$dir/host_ed25519.pub")" >>"$dir/known_hosts"
		printf 'Host %s\n  HostName 127.0.3.%s\n' "$h" "$i" >>"$dir/ssh_config"
		# first value wins in ssh_config: before "Host fh*"
		[ -z "$own" ] || printf '  User mgf%03d\n' "$i" >>"$dir/ssh_config"
		/usr/sbin/sshd -f "$dir/sshd_$h.config" -E "$dir/sshd.log"
		i=$((i+1))
	done
	cat >>"$dir/ssh_config" <<EOC
Host fh*
  Port $port
  User mgfleet
  IdentityFile $dir/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 60
EOC
	chmod 0600 "$dir/ssh_config"
	i=0
	while [ "$(ls "$dir"/sshd_*.pid 2>/dev/null | wc -l)" -lt "$n" ] && [ $i -lt 400 ]; do
		sleep 0.05
		i=$((i+1))
	done
	[ "$(ls "$dir"/sshd_*.pid 2>/dev/null | wc -l)" -ge "$n" ] ||
		{ echo "not every sshd started:" >&2; cat "$dir/sshd.log" >&2; exit 1; }
	echo "$port"
}

stop() {
	[ -n "$dir" ] || { echo "usage: fleet.sh stop DIR" >&2; exit 2; }
	for f in "$dir"/sshd.pid "$dir"/sshd12.pid "$dir"/sshd_*.pid; do
		if [ -s "$f" ]; then
			kill "$(cat "$f")" 2>/dev/null || true
		fi
	done
	rm -rf "$dir"
}

case "$cmd" in
start) start ;;
start-many) start_many "$@" ;;
stop) stop ;;
*) echo "usage: fleet.sh start DIR | start-many DIR N [own-users] | stop DIR" >&2; exit 2 ;;
esac
