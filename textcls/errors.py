import difflib
import signal


class UserError(ValueError):
    """Bad input from the user: the message names the problem and the fix.

    run_classification.py prints it as one line and exits non-zero, without a traceback.
    """


def suggest(name: str, valid) -> str:
    """' Did you mean 'x'?' for the closest valid name, or ''."""
    match = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f" Did you mean '{match[0]}'?" if match else ""


class TrainingStopped(Exception):
    """Training was stopped by a signal after saving a checkpoint; exit_code is the shell's 128 + signal number.
    advice: what the same command does next in output_dir (run_folder.rerun_advice)."""

    def __init__(self, signum: int, step: int, checkpoint: str | None, advice: str = ""):
        name = signal.Signals(signum).name
        where = f"checkpoint saved in {checkpoint}" if checkpoint else "no checkpoint could be saved"
        advice = advice or "Run the same command again to resume from the last checkpoint."
        super().__init__(f"stopped by {name} at step {step}: {where}. {advice}")
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.exit_code = 128 + signum


class Interrupted(KeyboardInterrupt):
    """Ctrl-C outside the training steps (loading, tokenizing, evaluating), with what the same command does next."""

    def __init__(self, advice: str):
        super().__init__(advice)
        self.advice = advice


class DiskFull(UserError):
    """A write ran out of space: the message names the folder, what it needed, and what is kept."""
