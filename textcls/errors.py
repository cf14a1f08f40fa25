class UserError(ValueError):
    """Bad input from the user: the message names the problem and the fix.

    run_classification.py prints it as one line and exits non-zero, without a traceback.
    """
