"""MATH answer extraction and equivalence, behaving exactly as the references.

Matched against EleutherAI/lm-evaluation-harness ``lm_eval/tasks/hendrycks_math/utils.py``
(``last_boxed_only_string``, ``remove_boxed``, ``is_equiv``, ``strip_string`` and helpers,
which that file takes from hendrycks/math ``modeling/math_equivalence.py`` and
``modeling/dataset/util.py``).  The code is written anew, but every branch keeps the
reference's behaviour, including where the reference raises: ``is_equiv`` falls back to
plain string equality whenever normalization raises, so the cases that raise there
(``x/2``, ``\\sqrt`` at the end of a string, two ``\\text{ `` units, ...) raise here too.
``tests/test_scoring.py`` checks this sample by sample against lm-eval's own functions.
"""

from __future__ import annotations

import re

BOXED_SPACE = "\\boxed "
BOXED_BRACE = "\\boxed{"

# Plain replacements of strip_string, in the reference's order, split at the two places
# where a structural step (right units, leading-dot) sits between them.
_FIRST_REPLACEMENTS = (
    ("\n", ""),  # line breaks
    ("\\!", ""),  # inverse spaces
    ("\\\\", "\\"),
    ("tfrac", "frac"),
    ("dfrac", "frac"),
    ("\\left", ""),
    ("\\right", ""),
    ("^{\\circ}", ""),  # degrees
    ("^\\circ", ""),
    ("\\$", ""),  # dollar signs
)
_SECOND_REPLACEMENTS = (
    ("\\%", ""),  # percent (the reference lists it twice; once is the same)
    (" .", " 0."),
    ("{.", "{0."),
)


def last_boxed_only_string(text: str) -> str | None:
    """The last ``\\boxed{...}`` (or ``\\fbox{...}``) with balanced braces, else None.

    As the reference: any ``"\\boxed "`` (with a space) wins and runs to the next ``$``.
    """
    if BOXED_SPACE in text:
        return BOXED_SPACE + text.split(BOXED_SPACE)[-1].split("$")[0]
    start = text.rfind("\\boxed")
    if start < 0:
        start = text.rfind("\\fbox")
        if start < 0:
            return None
    depth = 0
    for pos in range(start, len(text)):
        ch = text[pos]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start : pos + 1]
    return None


def remove_boxed(boxed: str | None) -> str | None:
    """Content of ``\\boxed{...}`` / ``\\boxed ...``; None where the reference's asserts fail
    (so ``\\fbox{...}`` gives None, as in hendrycks/math's eval_math_gpt.py)."""
    if boxed is None:
        return None
    if BOXED_SPACE in boxed:
        return boxed[len(BOXED_SPACE) :] if boxed.startswith(BOXED_SPACE) else None
    if boxed.startswith(BOXED_BRACE) and boxed.endswith("}"):
        return boxed[len(BOXED_BRACE) : -1]
    return None


def boxed_answer(text: str) -> str | None:
    """remove_boxed(last_boxed_only_string(text)), None when there is no usable box."""
    return remove_boxed(last_boxed_only_string(text))


def _fix_sqrt(s: str) -> str:
    # sqrt3 -> sqrt{3}; an empty piece (\sqrt at the end) raises IndexError as the reference
    if "\\sqrt" not in s:
        return s
    head, *pieces = s.split("\\sqrt")
    out = [head]
    for piece in pieces:
        if piece[0] == "{":
            out.append("\\sqrt" + piece)
        else:
            out.append("\\sqrt{" + piece[0] + "}" + piece[1:])
    return "".join(out)


def _fix_fracs(s: str) -> str:
    # \frac12 -> \frac{1}{2}, \frac1{72} -> \frac{1}{72}; an empty piece raises IndexError
    # and a one-character piece returns the input unchanged, both as the reference
    head, *pieces = s.split("\\frac")
    out = [head]
    for piece in pieces:
        out.append("\\frac")
        if piece[0] == "{":
            out.append(piece)
            continue
        if len(piece) < 2:
            return s
        num, den, rest = piece[0], piece[1], piece[2:]
        if den == "{":
            out.append("{" + num + "}" + den + rest)
        else:
            out.append("{" + num + "}{" + den + "}" + rest)
    return "".join(out)


def _fix_a_slash_b(s: str) -> str:
    # "3/4" -> \frac{3}{4}.  int() of a non-integer side raises ValueError, which the
    # reference does not catch (so is_equiv falls back to raw comparison): kept.
    parts = s.split("/")
    if len(parts) != 2:
        return s
    num, den = int(parts[0]), int(parts[1])
    if s != f"{num}/{den}":
        return s
    return "\\frac{" + str(num) + "}{" + str(den) + "}"


def _remove_right_units(s: str) -> str:
    # "\text{ " only ever introduces units; more than one raises, as the reference's assert
    if "\\text{ " not in s:
        return s
    parts = s.split("\\text{ ")
    if len(parts) != 2:
        raise ValueError("more than one \\text{ unit")
    return parts[0]


def strip_string(s: str) -> str:
    """hendrycks_math's normalization of an answer string (may raise, as the reference)."""
    for old, new in _FIRST_REPLACEMENTS:
        s = s.replace(old, new)
    s = _remove_right_units(s)
    for old, new in _SECOND_REPLACEMENTS:
        s = s.replace(old, new)
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:  # drop a short "k = " prefix
        s = sides[1]
    s = _fix_sqrt(s)
    s = s.replace(" ", "")
    s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _fix_a_slash_b(s)


def is_equiv(a: str | None, b: str | None) -> bool:
    """Equal after strip_string; raw equality if normalization raises (the reference)."""
    if a is None and b is None:
        return True
    if a is None or b is None:
        return False
    try:
        return strip_string(a) == strip_string(b)
    except Exception:
        return a == b


def dollar_span(text: str) -> str:
    """lm-eval hendrycks_math ``process_results``' extraction: the text between the first and
    the last ``$`` when there are two or more, else the whole output."""
    first, last = text.find("$"), text.rfind("$")
    if first == last:  # zero or one "$"
        return text
    return text[first + 1 : last]


# "Final Answer: The final answer is $X$. I hope it is correct." (Minerva, as in lm-eval
# lm_eval/tasks/minerva_math/utils.py get_unnormalized_answer) and the looser "the final
# answer is X" that chat models write.  Takes the last occurrence, up to the end of its line.
_FINAL_ANSWER = re.compile(r"final answer is\s*:?\s*(.*)", re.IGNORECASE)
_HOPE = re.compile(r"\s*I hope it is correct\.?\s*$", re.IGNORECASE)


def final_answer_phrase(text: str) -> str | None:
    """The X of the last "the final answer is X" (specbench addition), else None."""
    found = _FINAL_ANSWER.findall(text)
    if not found:
        return None
    ans = _HOPE.sub("", found[-1]).strip()
    if ans.endswith("."):
        ans = ans[:-1].rstrip()
    if len(ans) >= 2 and ans.startswith("$") and ans.endswith("$"):
        ans = ans.strip("$").strip()
    return ans or None
