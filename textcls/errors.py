import difflib


class UserError(ValueError):
    """Bad input from the user: the message names the problem and the fix.

    run_classification.py prints it as one line and exits non-zero, without a traceback.
    """


def suggest(name: str, valid) -> str:
    """' Did you mean 'x'?' for the closest valid name, or ''."""
    match = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f" Did you mean '{match[0]}'?" if match else ""
