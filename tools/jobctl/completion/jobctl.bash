# bash completion for jobctl (installed as
# share/bash-completion/completions/jobctl). Completes the commands and
# their options from the lists below (keep them as `jobctl --help` has them),
# job names from `jobctl jobs --json` and run ids of running runs from
# `jobctl runs --status running --json` when the database answers.

_jobctl_json_names() {
  # $1: jobs | runs; the database options the user typed come along.
  local -a db=()
  local i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${COMP_WORDS[i]}" in
      --db | --db-file | --plugin) db+=("${COMP_WORDS[i]}" "${COMP_WORDS[i + 1]}") ;;
      --db=* | --db-file=* | --plugin=*) db+=("${COMP_WORDS[i]}") ;;
    esac
  done
  if [[ $1 == jobs ]]; then
    jobctl "${db[@]}" --json jobs 2>/dev/null | sed -n 's/^    "name": "\(.*\)",$/\1/p'
  else
    jobctl "${db[@]}" --json runs --status running --limit -1 2>/dev/null |
      sed -n 's/^    "private_id": "\(.*\)",$/\1/p'
  fi
}

_jobctl() {
  local cur prev
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD - 1]}"
  local globals="--db --db-file --json --plugin --help --version"
  case "$prev" in
    --db-file | --config) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --db | --plugin | --server | --server-id | --next-run-in | --threshold | --older-than | --limit | --wait | \
      --message | --time-zone | --from | --count | --http | --http-host | --keep)
      return ;;
    --job) COMPREPLY=($(compgen -W "$(_jobctl_json_names jobs)" -- "$cur")); return ;;
    --status) COMPREPLY=($(compgen -W "running completed failed interrupted" -- "$cur")); return ;;
    --log-format) COMPREPLY=($(compgen -W "text json" -- "$cur")); return ;;
    --log-level) COMPREPLY=($(compgen -W "debug info warning error" -- "$cur")); return ;;
  esac
  # The command words typed so far (options and their values left out).
  local -a words=()
  local i w
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${COMP_WORDS[i]}"
    case "$w" in
      --db | --db-file | --plugin | --server | --server-id | --config | --next-run-in | --threshold | \
        --older-than | --limit | --wait | --message | --time-zone | --from | --count | --job | --status | \
        --http | --http-host | --log-format | --log-level | --keep)
        ((i++)) ;;
      -*) ;;
      *) words+=("$w") ;;
    esac
  done
  local first="${words[0]}" second="${words[1]}"
  if ((${#words[@]} == 0)); then
    COMPREPLY=($(compgen -W "migrate jobs job runs run claim interrupt prune audit serve cron $globals" -- "$cur"))
    return
  fi
  case "$first" in
    job)
      if ((${#words[@]} == 1)); then
        COMPREPLY=($(compgen -W "show create next-run run-now pause resume delete" -- "$cur"))
      elif ((${#words[@]} == 2)); then
        case "$second" in
          show | next-run | run-now | pause | resume | delete)
            COMPREPLY=($(compgen -W "$(_jobctl_json_names jobs)" -- "$cur")) ;;
        esac
        [[ $second == delete ]] && COMPREPLY+=($(compgen -W "--force" -- "$cur"))
        [[ $second == create ]] && COMPREPLY+=($(compgen -W "--next-run-in" -- "$cur"))
      fi ;;
    run)
      if ((${#words[@]} == 1)); then
        COMPREPLY=($(compgen -W "show cancel progress complete fail" -- "$cur"))
      elif ((${#words[@]} == 2)); then
        COMPREPLY=($(compgen -W "$(_jobctl_json_names runs)" -- "$cur"))
        [[ $second == cancel ]] && COMPREPLY+=($(compgen -W "--wait --no-wait" -- "$cur"))
        [[ $second == complete ]] && COMPREPLY+=($(compgen -W "--next-run-in" -- "$cur"))
        [[ $second == fail ]] && COMPREPLY+=($(compgen -W "--message" -- "$cur"))
      fi ;;
    runs) COMPREPLY=($(compgen -W "--job --status --limit" -- "$cur")) ;;
    claim) COMPREPLY=($(compgen -W "--server --limit" -- "$cur")) ;;
    interrupt) COMPREPLY=($(compgen -W "--threshold --server" -- "$cur")) ;;
    prune) COMPREPLY=($(compgen -W "--older-than --job --keep" -- "$cur")) ;;
    serve) COMPREPLY=($(compgen -W "--config --server-id --http --http-host --log-format --log-level --check" -- "$cur")) ;;
    cron) ((${#words[@]} == 1)) && COMPREPLY=($(compgen -W "next" -- "$cur")) ||
      COMPREPLY=($(compgen -W "--time-zone --from --count" -- "$cur")) ;;
  esac
}

complete -F _jobctl jobctl
