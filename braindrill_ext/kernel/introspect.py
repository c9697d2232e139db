"""What a kernel answers from its own record of cells, without a sandbox: ``history_request``
(tail, range, search, as IPython's history manager answers them), and completion for the
languages whose completion does not run in a sandbox (the names of earlier cells and the
language's keywords), and for Python when its sandbox gave no answer in time. Pure functions,
used by the kernel."""

from __future__ import annotations

import builtins
import fnmatch
import keyword
import re

SESSION = 1  # the kernel's history session: one per kernel life, as IPython's in-memory one
HISTORY_BYTES = 256 << 10  # the earlier cells a Python cell is given, at most (newest kept)

# The reserved words of each language by its Jupyter name (language_info.name); Python's builtins.
KEYWORDS = {
    "python": " ".join([*keyword.kwlist, *(n for n in dir(builtins) if not n.startswith("_"))]),
    "bash": "if then else elif fi case esac for while until do done in function select time "
    "return local export readonly declare echo printf read shift exit",
    "javascript": "async await break case catch class const continue debugger default delete do "
    "else export extends finally for function if import in instanceof let new return super "
    "switch this throw try typeof var void while with yield console require",
    "typescript": "abstract any as async await boolean break case catch class const constructor "
    "continue declare default delete do else enum export extends false finally for from "
    "function if implements import in instanceof interface let module namespace never new null "
    "number private protected public readonly return string super switch this throw true try "
    "type typeof undefined unknown var void while yield console",
    "ruby": "alias and begin break case class def defined? do else elsif end ensure false for if "
    "in module next nil not or redo rescue retry return self super then true undef unless until "
    "when while yield puts require attr_accessor",
    "lua": "and break do else elseif end false for function goto if in local nil not or repeat "
    "return then true until while print require",
    "perl": "my our local sub if elsif else unless while until for foreach last next redo return "
    "use package print printf say",
    "php": "abstract and array as break callable case catch class clone const continue declare "
    "default do echo else elseif empty enddeclare endfor endforeach endif endswitch endwhile "
    "extends final finally fn for foreach function global goto if implements include instanceof "
    "interface isset list match namespace new or print private protected public readonly "
    "require return static switch throw trait try unset use var while yield",
    "go": "break case chan const continue default defer else fallthrough for func go goto if "
    "import interface map package range return select struct switch type var fmt",
    "rust": "as async await break const continue crate dyn else enum extern false fn for if impl "
    "in let loop match mod move mut pub ref return self Self static struct super trait true "
    "type unsafe use where while println",
    "c": "auto break case char const continue default do double else enum extern float for goto "
    "if inline int long register restrict return short signed sizeof static struct switch "
    "typedef union unsigned void volatile while printf include",
    "c++": "alignas auto bool break case catch char class const constexpr continue decltype "
    "default delete do double else enum explicit extern false float for friend if inline int "
    "long namespace new noexcept nullptr operator private protected public return short signed "
    "sizeof static struct switch template this throw true try typedef typename union unsigned "
    "using virtual void volatile while std cout include",
    "java": "abstract assert boolean break byte case catch char class const continue default do "
    "double else enum extends final finally float for if implements import instanceof int "
    "interface long native new package private protected public return short static super "
    "switch synchronized this throw throws transient try var void volatile while System String",
}
WORD = re.compile(r"[A-Za-z_$][\w$]*")


def complete_words(language_name: str, cells: list[str], code: str, pos: int) -> dict:
    """The ``complete_reply`` fields for the word before ``pos``: the names of earlier cells and
    of this one, and the language's keywords, that start with it."""
    match = re.search(r"[A-Za-z_$][\w$]*$", code[:pos])
    start = match.start() if match else pos
    prefix = code[start:pos]
    words = set(KEYWORDS.get(language_name, "").split())
    for text in [*cells, code]:
        words.update(WORD.findall(text))
    matches = sorted(w for w in words if w.startswith(prefix) and w != prefix) if prefix else []
    return {"matches": matches, "cursor_start": start, "cursor_end": pos, "metadata": {}}


def history_entries(cells: list[str], content: dict) -> list:
    """``history_reply``'s ``history``: ``(session, line, input)`` triples (``(input, None)`` in
    place of the input with ``output``), for ``hist_access_type`` tail, range or search."""
    numbered = [(SESSION, n, cell) for n, cell in enumerate(cells) if n and cell]
    kind = content.get("hist_access_type", "tail")
    n = content.get("n")
    if kind == "range":
        if content.get("session", 0) not in (0, SESSION):
            numbered = []
        start, stop = content.get("start", 1) or 1, content.get("stop")
        numbered = [e for e in numbered if e[1] >= start and (stop is None or e[1] < stop)]
    elif kind == "search":
        pattern = content.get("pattern", "*")
        numbered = [e for e in numbered if fnmatch.fnmatchcase(e[2], pattern)]
        if content.get("unique"):
            seen: set[str] = set()
            unique = []
            for entry in reversed(numbered):
                if entry[2] not in seen:
                    seen.add(entry[2])
                    unique.append(entry)
            numbered = unique[::-1]
        numbered = numbered[-n:] if n else numbered
    elif kind == "tail":
        numbered = numbered[-n:] if n else numbered
    else:
        numbered = []
    if content.get("output"):
        return [(s, line, (text, None)) for s, line, text in numbered]
    return numbered


def recent(cells: list[str], count: int) -> list[str]:
    """The earlier cells a Python cell numbered ``count`` is given, by count: the newest ones
    within ``HISTORY_BYTES``, older ones left empty."""
    given = cells[:count]
    room = HISTORY_BYTES
    for n in range(len(given) - 1, 0, -1):
        room -= len(given[n])
        if room < 0:
            given[1 : n + 1] = [""] * n
            break
    return given


def empty_tool_reply(tool: str, pos: int) -> dict:
    if tool == "complete":
        return {"matches": [], "cursor_start": pos, "cursor_end": pos, "metadata": {}}
    return {"found": False, "data": {}, "metadata": {}}


def tool_reply(result, mime: str, empty: dict) -> dict:
    """A tool execution's answer: its one reply record's fields, checked; ``empty`` otherwise."""
    for output in result.outputs if result is not None else ():
        reply = output.get("data", {}).get(mime)
        if isinstance(reply, dict) and set(empty) <= set(reply):
            return {key: reply[key] for key in empty}
    return empty
