"""The supervised process of a local attempt (compute/local.py, and each member of a multi-container one:
compute/local_group.py): the `sh` supervisor it runs under, its spawn, and what the launcher reads of it before it
reports (an end that came at once, the command forked).

- The command runs under a tiny `sh` supervisor (the session leader) that records the command's exit status in the
  journal when it ends (compute/local_journal.py), so an end while the server is down is known at its next start.
- Exit codes are reported as Docker reports them: 128+N for a signal N.
"""

from __future__ import annotations

import functools
import io
import os
import select
import shutil
import time
from pathlib import Path

from chalicelib.compute.spawn import Process, spawn

START_REPORT_S = 0.05  # TaskStarted waits this long for the end of a task without output, to come with its stop
COMMAND_WAIT_S = 5.0  # how long a stop that came before the command was forked waits for it (wait_for_command)
PF_FORKNOEXEC = 0x40  # Linux's task flag (include/linux/sched.h) of a process forked that has not exec'd yet
# The supervisor: signals sent to the session (stop, timeout) reach the command; the trap only defers the shell's own
# reaction until the command has ended, so its status is recorded and becomes the supervisor's exit status (a signal
# N is 128+N either way). A trapped signal is reset to its default in the command, unlike an ignored one.
# Arguments: the journal's path, the attempt's key, then the command. The shell's own variables have names no job
# uses: a job variable named like one would be overwritten (and stay exported) for the command.
SUPERVISOR = (
    '__bp_j=$1 __bp_k=$2; shift 2; trap : HUP INT TERM; "$@"; __bp_c=$?; '
    'printf "exit %s %s\\n" "$__bp_k" "$__bp_c" >> "$__bp_j"; exit "$__bp_c"'
)


# An array child's runner (compute/local_runs.py, docs/adr/0039): the supervisor in a loop, one child of one array
# per line of its stdin ("<index> <attempt>"), with the PER_CHILD variables of each, its starts and ends told on its
# stdout behind MARK and a nonce (its first line). Arguments: the journal's path, the work root, the array's job id,
# then the command. The child's job id is "<array>:<index>", its key "<job id>#<attempt>" and its work dir
# "<root>/<array>_<index>/<attempt>" (compute/local.py `work_dir`). The lines are that short because `read` takes
# its input from a pipe one byte per system call: a line with the key, the job id and the work dir cost the runner
# ~200 reads per child. The runner journals a child's pid line itself (its own pid: the recovery kills its group),
# then tells its "S", then forks the command: a child queued behind another (RUN_AHEAD) that the runner never
# reached has no pid line, and is launched again by a recovery (compute/local_recovery.py). A pid line that cannot
# be written (a full disk) makes the child "F" (not started). After the server died, the runner's next "S" (or "E")
# ends it before it forks (SIGPIPE, or the write's error: the server held the pipe's only read end), so no child
# runs whose pid line a recovery did not find.
PER_CHILD = ("AWS_BATCH_JOB_ID", "AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ATTEMPT")
MARK = b"\x1e"
RUNNER = (
    "__bp_j=$1 __bp_r=$2 __bp_p=$3; shift 3; trap : HUP INT TERM; IFS= read -r __bp_n || exit 0; "
    "while IFS=' ' read -r __bp_i __bp_a; do "
    "__bp_k=$__bp_p:$__bp_i#$__bp_a; "
    'cd "$__bp_r/${__bp_p}_$__bp_i/$__bp_a" 2>/dev/null || '
    '{ printf "\\036%s F %s\\n" "$__bp_n" "$__bp_k"; continue; }; '
    'printf "pid %s %s\\n" "$__bp_k" "$$" 2>/dev/null >> "$__bp_j" || '
    '{ printf "\\036%s F %s\\n" "$__bp_n" "$__bp_k"; continue; }; '
    'printf "\\036%s S %s\\n" "$__bp_n" "$__bp_k" || exit 1; '
    'AWS_BATCH_JOB_ID=$__bp_p:$__bp_i AWS_BATCH_JOB_ARRAY_INDEX=$__bp_i AWS_BATCH_JOB_ATTEMPT=$__bp_a "$@" </dev/null; '
    '__bp_c=$?; printf "exit %s %s\\n" "$__bp_k" "$__bp_c" >> "$__bp_j"; '
    'printf "\\036%s E %s %s\\n" "$__bp_n" "$__bp_k" "$__bp_c"; done'
)

# The commands /bin/sh (dash) runs as builtins that also exist as programs: run as "$@", a command named so would
# run the builtin, which is not the program a container runs (dash's echo reads backslash escapes, coreutils' does
# not). Such a command is given the program's path instead (`as_program`); others are left as they are (argv[0]
# stays what the job gave, as in a container).
SHELL_BUILTIN_PROGRAMS = frozenset({"echo", "printf", "test", "[", "true", "false", "kill", "pwd"})


@functools.lru_cache(maxsize=256)
def _program_path(name: str, path: str) -> str | None:
    return shutil.which(name, path=path)


def as_program(command: list[str], env: dict[str, str]) -> list[str]:
    """`command` as the supervisor must pass it so that the program runs, not a builtin of the shell."""
    if not command or command[0] not in SHELL_BUILTIN_PROGRAMS:
        return command
    found = _program_path(command[0], env.get("PATH", os.defpath))
    return [found, *command[1:]] if found else command


def exit_code_of(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def not_executable(program: str, env: dict[str, str], cwd: Path) -> str | None:
    """Why exec would fail to find `program` (as the strerror exec would give), or None when it is runnable."""
    if "/" in program:
        path = cwd / program
        if not path.exists():
            return "No such file or directory"
        return None if path.is_file() and os.access(path, os.X_OK) else "Permission denied"
    return None if shutil.which(program, path=env.get("PATH", os.defpath)) else "No such file or directory"


def quick_exit(proc: Process) -> int | None:
    """The exit code if the process closes its output without writing any and exits within START_REPORT_S; None
    when it runs on or writes output (the caller reads and logs that)."""
    assert isinstance(proc.stdout, io.BufferedReader)  # Popen's default buffering
    deadline = time.monotonic() + START_REPORT_S
    poller = select.poll()  # not select(): no limit on the descriptor's number
    poller.register(proc.stdout, select.POLLIN)
    if not poller.poll(START_REPORT_S * 1000) or proc.stdout.peek(1):  # peek: b"" only at the end of output
        return None
    code = proc.wait(max(0.0, deadline - time.monotonic()))
    return None if code is None else exit_code_of(code)


def spawn_supervised(workdir: Path, journal: Path, key: str, command: list[str], env: dict[str, str]) -> Process:
    """Start `command` under SUPERVISOR, which records its exit in `journal` under `key` (a single-container
    attempt's, or a member of a multi-container one: compute/local_group.py). OSError when /bin/sh cannot run."""
    argv = ["/bin/sh", "-c", SUPERVISOR, "batchplane-task", str(journal), key, *as_program(command, env)]
    return spawn(argv, env, workdir)


def holds_command(pid: int) -> bool:
    """Whether the supervisor `pid` has its command as a child (running, or ended and not reaped yet): it opens the
    journal by its path only after it has reaped it. False where /proc is missing (or once it ended)."""
    try:
        return bool(Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
    except OSError:
        return False


def may_append(spawning: bool, proc: Process | None) -> bool:
    """Whether a supervisor may still append its exit line to an inode the journal's path named before this call
    (a live compaction's journal.old: compute/local_journal.py `Journal.attach`). Not once it was reaped (its line
    is written), nor while its command runs or waits to be reaped (it opens the path only after: the path's inode
    then), nor before its spawn began. `spawning` is read before `proc` (arguments are evaluated in order): the
    spawner sets `proc` before it clears `spawning`, so a spawn that ended meanwhile is seen with its process. One
    between the reaping and its exit may: a few system calls, waited for."""
    if proc is None:
        return spawning
    return proc.returncode is None and not holds_command(proc.pid)


def wait_for_command(proc: Process) -> None:
    """Wait (at most COMMAND_WAIT_S, read at each call) until the supervisor's command runs (forked and exec'd), or
    the supervisor has ended. Linux: its children in /proc (where that is missing, returns at once). Past the bound a
    stop is sent anyway: if the trap swallows it, the SIGKILL of the grace period still ends the task.

    Forked is not enough: dash (/bin/sh on Debian) vforks the command and unblocks signals in the child before its
    execve, with the trap's handler still installed there, so a SIGTERM that comes between the fork and the exec runs
    that handler in the child and is gone: the command then runs until the SIGKILL."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    deadline = time.monotonic() + COMMAND_WAIT_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            forked = children.read_text().split()
        except OSError:
            return  # ended, or no /proc
        if forked and execed(forked[0]):
            return
        time.sleep(0.002)


def execed(pid: str) -> bool:
    """Whether the process has exec'd (or is gone). The flag is cleared inside execve before the signal handlers are
    reset, and a signal is acted on only when the call returns: one sent from then on meets the default action."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # ended and reaped: its command ran
    return int(stat.rsplit(")", 1)[1].split()[6]) & PF_FORKNOEXEC == 0  # the 9th field: flags (after "(comm)")
