# SPDX-License-Identifier: MIT
# bash completion for mitogen(1): subcommands, options, option arguments
# (files, capabilities, seccomp profiles), and targets: hop kinds (local,
# fork, ssh:, sudo, su:, doas) after each '/' and ',', and hosts from
# ~/.ssh/config and known_hosts as OpenSSH's completion finds them
# (bash-completion's _known_hosts_real). Installed as
# /usr/share/bash-completion/completions/mitogen.
#
# Kept in step with tools/mitogen.c (long options) and tools/targets.c
# (hop kinds); selftests/packaging/install.sh checks every option of
# `mitogen --help` is offered here.

_mitogen_hosts()
{
	# Hosts from ~/.ssh/config (Host lines without wildcards) and the
	# known_hosts files; bash-completion does it as ssh's completion does.
	local cur=$1
	COMPREPLY=()
	if declare -F _known_hosts_real >/dev/null; then
		_known_hosts_real -a -- "$cur"
		[ ${#COMPREPLY[@]} -eq 0 ] || printf '%s\n' "${COMPREPLY[@]}"
		return
	fi
	{
		awk 'tolower($1) == "host" { for (i = 2; i <= NF; i++) print $i }' \
			~/.ssh/config 2>/dev/null | grep -v '[*?!]'
		awk '$1 !~ /^[|#@]/ { n = split($1, h, ","); for (i = 1; i <= n; i++) print h[i] }' \
			~/.ssh/known_hosts /etc/ssh/ssh_known_hosts 2>/dev/null |
			sed -e 's/^\[\(.*\)\]:[0-9]*$/\1/'
	} | sort -u | grep -- "^$cur" || true
}

# Complete one hop of a target (the text after the last '/' or ',').
_mitogen_hop()
{
	local hop=$1 kinds="local fork ssh: sudo sudo: su: doas doas: podman: docker: docker-image: buildah: lxc: lxd: incus: kubectl: machinectl: setns:podman: setns:docker: setns:lxc: setns:pid:" user host
	case $hop in
	ssh:*@*)
		user=${hop#ssh:}; user=${user%%@*}; host=${hop#*@}
		_mitogen_hosts "$host" | sed "s/^/ssh:$user@/"
		;;
	ssh:*)
		_mitogen_hosts "${hop#ssh:}" | sed 's/^/ssh:/'
		;;
	sudo:* | su:* | doas:*)
		compgen -u -- "${hop#*:}" | sed "s/^/${hop%%:*}:/"
		;;
	*@*)
		user=${hop%%@*}; host=${hop#*@}
		_mitogen_hosts "$host" | sed "s/^/$user@/"
		;;
	*)
		compgen -W "$kinds" -- "$hop"
		_mitogen_hosts "$hop"
		;;
	esac
}

# Complete $cur as a list of targets (-t): hops after each '/' and ','.
_mitogen_target_words()
{
	local head="" tail=$cur
	case $cur in
	^*)
		mapfile -t COMPREPLY < <(compgen -f -P ^ -- "${cur#^}")
		return
		;;
	*[/,]*)
		head=${cur%[/,]*}
		head="$head${cur:${#head}:1}"
		tail=${cur:${#head}}
		;;
	esac
	mapfile -t COMPREPLY < <(_mitogen_hop "$tail" | sed "s|^|$head|")
	# a kind that takes an argument: no space after it
	[[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *: ]] && compopt -o nospace 2>/dev/null
}

_mitogen()
{
	local cur prev words cword
	if declare -F _init_completion >/dev/null; then
		_init_completion -n :=, || return
	else
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD - 1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	fi

	local cmds="run call script stats copy fetch rsync scp fakessh audit"
	local opts="-t -w --target --type --hostfile -x --exclude -l --user
		-i --identity -p --port --ssh-option --ssh-config --password-file
		-f --fanout --connect-timeout --command-timeout --timeout
		-I --stdin -k --keep-going --heartbeat -b --gather --diff --json
		--summary -q --quiet -v --verbose --sandbox --caps --nofile
		--no-net --ro --rw --exec --tenant --pids-max --tenant-deny
		-h --help"
	local builtins="mg.run mg.run_stream mg.read_file mg.write_file
		mg.stat mg.unlink mg.getpid mg.getuid mg.uname mg.environ mg.noop"

	# The subcommand: the first word that is not -v.
	local i cmd= files_cmd=
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		-v | --verbose) ;;
		*) cmd=${words[i]}; break ;;
		esac
	done

	if [ -z "$cmd" ]; then
		if [[ $cur == -* ]]; then
			mapfile -t COMPREPLY < <(compgen -W "-v --help --version" -- "$cur")
		else
			mapfile -t COMPREPLY < <(compgen -W "$cmds" -- "$cur")
		fi
		return
	fi

	# copy, fetch, rsync, scp, fakessh: their own options (tools/files.c);
	# option arguments are completed below, as for run.
	case $cmd in
	copy | fetch | rsync | scp | fakessh)
		files_cmd=$cmd
		opts="-t --target -r --recursive --mode -p --preserve --no-fsync -f --fanout
			--connect-timeout -l --user -i --identity --port -o --ssh-option --ssh-config
			-v --verbose -q --quiet -h --help --"
		;;
	audit)
		local sub=
		for ((i = i + 1; i < cword; i++)); do
			case ${words[i]} in
			verify | show | fetch | keys) sub=${words[i]}; break ;;
			esac
		done
		case $sub,$prev in
		,*) mapfile -t COMPREPLY < <(compgen -W "verify show fetch keys --help" -- "$cur") ;;
		fetch,-t | keys,-t) _mitogen_target_words ;;
		*,--since | *,--context | *,--function) ;;
		*)
			if [[ $cur == -* ]]; then
				case $sub in
				verify) mapfile -t COMPREPLY < <(compgen -W "--key" -- "$cur") ;;
				show) mapfile -t COMPREPLY < <(compgen -W "--since --context --function --json" -- "$cur") ;;
				fetch) mapfile -t COMPREPLY < <(compgen -W "-t" -- "$cur") ;;
				keys) mapfile -t COMPREPLY < <(compgen -W "--rotate -t" -- "$cur") ;;
				esac
			elif [ "$sub" != keys ]; then
				mapfile -t COMPREPLY < <(compgen -f -- "$cur")
				compopt -o filenames 2>/dev/null
			fi
			;;
		esac
		return
		;;
	esac

	if [ "$cmd" = stats ]; then
		case $prev in
		--pid | -p)
			mapfile -t COMPREPLY < <(compgen -W "$(pgrep -d ' ' -u "$(id -u)" 2>/dev/null)" -- "$cur")
			;;
		*)
			mapfile -t COMPREPLY < <(compgen -W "--pid --watch" -- "$cur")
			;;
		esac
		return
	fi

	# After '--' (run) everything is the command: complete commands, then files.
	for ((i = i + 1; i < cword; i++)); do
		if [ "${words[i]}" = -- ]; then
			if [ $((i + 1)) -eq "$cword" ]; then
				mapfile -t COMPREPLY < <(compgen -c -- "$cur")
			else
				mapfile -t COMPREPLY < <(compgen -f -- "$cur")
			fi
			return
		fi
	done

	case $prev in
	-t | -w | --target | --type | -x | --exclude)
		_mitogen_target_words
		return
		;;
	--hostfile | -i | --identity | --ssh-config | --password-file | \
	--ro | --rw | --exec)
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		compopt -o filenames 2>/dev/null
		return
		;;
	-l | --user)
		mapfile -t COMPREPLY < <(compgen -u -- "$cur")
		return
		;;
	--sandbox)
		mapfile -t COMPREPLY < <(compgen -W "default strict" -- "$cur"; compgen -f -- "$cur")
		return
		;;
	--caps)
		mapfile -t COMPREPLY < <(compgen -W "cap_chown cap_dac_override
			cap_dac_read_search cap_fowner cap_fsetid cap_kill cap_setgid
			cap_setuid cap_setpcap cap_net_bind_service cap_net_raw
			cap_net_admin cap_sys_chroot cap_sys_ptrace cap_sys_admin
			cap_sys_nice cap_sys_resource cap_audit_write cap_setfcap" -- "${cur##*,}" |
			sed "s|^|$( [[ $cur == *,* ]] && echo "${cur%,*},")|")
		return
		;;
	--tenant-deny)
		mapfile -t COMPREPLY < <(compgen -W "inet netlink packet" -- "${cur##*,}" |
			sed "s|^|$( [[ $cur == *,* ]] && echo "${cur%,*},")|")
		return
		;;
	--heartbeat)
		mapfile -t COMPREPLY < <(compgen -W "off 20 20,60" -- "$cur")
		return
		;;
	-p | --port | -f | --fanout | --connect-timeout | --command-timeout | \
	--timeout | --nofile | --pids-max | --tenant | --ssh-option | --mode | -o)
		# -p is --preserve for copy and the others, and takes no argument
		[[ $prev == -p && -n $files_cmd ]] || return
		;;
	esac

	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
		return
	fi
	case $cmd in
	call) mapfile -t COMPREPLY < <(compgen -W "$builtins" -- "$cur") ;;
	script) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); compopt -o filenames 2>/dev/null ;;
	run) mapfile -t COMPREPLY < <(compgen -W "--" -- "$cur"; compgen -c -- "$cur") ;;
	copy | fetch | rsync | scp | fakessh)
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		compopt -o filenames 2>/dev/null
		;;
	esac
}
complete -F _mitogen mitogen
