"""Exit codes of the ``alphaswarm`` command and the error it raises to use them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

EXIT_OK = 0
#: Usage, input or lookup error: a bad option, a missing file, a bad spec, an unknown id,
#: a ledger that cannot be opened.
EXIT_ERROR = 1
#: The paper gate refused to start the session (every failing rule is printed).
EXIT_GATE_REFUSED = 2
#: The kill switch is engaged (a session may not start) or it killed the session.
EXIT_KILL_SWITCH = 3
#: The paper session ended with status ``failed``.
EXIT_SESSION_FAILED = 4
#: ``--url``: the server cannot be reached or answered with a 5xx.
EXIT_SERVER = 5
#: ``paper run`` stopped by Ctrl-C (SIGINT): the session ended ``stopped`` (128 + 2).
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\
exit codes:
  0    success (a paper run that completed, was stopped with `paper stop` or
       halted by a risk limit)
  1    usage or input error (bad option, missing file, bad spec, unknown id ...)
  2    the paper gate refused to start the session
  3    the kill switch is engaged, or it killed the session
  4    the paper session failed
  5    --url: the server cannot be reached or answered with an error 5xx
  130  `paper run` interrupted by Ctrl-C: the session was stopped cleanly
       (status `stopped` in the ledger); 143 for SIGTERM
"""


class CliError(Exception):
    """An error the command reports as one line on stderr, then exits with ``code``.

    Parameters
    ----------
    message : str
        The readable sentence.
    code : int
        The exit code (see :data:`EXIT_CODES_HELP`).
    details : iterable of str
        Extra lines printed under the message (e.g. every failing gate rule).
    hint : str
        A last line telling the user what to do next.
    """

    def __init__(
        self,
        message: str,
        code: int = EXIT_ERROR,
        details: Iterable[str] = (),
        hint: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = list(details)
        self.hint = hint
