"""Every error the library raises on purpose, in one place that imports nothing.

Each one means "this input, setting, file or state cannot be used" and carries a message that names it; the
command line prints such errors as one ``error: ...`` line and exits with status 2, never a traceback. They
subclass ``ValueError`` (``RuntimeError`` for training) so code that caught those before still does.
"""


class TextVAEError(Exception):
    """Base class: a problem the message fully describes, shown to a user without a traceback."""


class ConfigError(TextVAEError, ValueError):
    """A config key, value or file that cannot be used; the message names it."""


class UnknownNameError(ConfigError, KeyError):
    """A name that no registry holds (an encoder, model, corpus or tokenizer type); the message lists the valid
    ones. Also a KeyError, as a failed lookup."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class DataError(TextVAEError, ValueError):
    """Data that is missing or unusable; the message names the path or the problem."""


class TokenizerError(TextVAEError, ValueError):
    """A tokenizer folder, file or setting that cannot be used; the message names it."""


class InputError(TextVAEError, ValueError):
    """An argument to the model's API (sentences, latents, counts) that it cannot use; the message names it."""


class CheckpointError(TextVAEError, ValueError):
    """A model folder or checkpoint that is missing files or does not match the model or run it is loaded into."""


class TrainingError(TextVAEError, RuntimeError):
    """Training cannot go on (repeated non-finite steps, a locked output folder); the message says what to try."""


class LengthWarning(UserWarning):
    """Sentences were truncated or dropped to fit ``max_length``: one warning per split or API call, counting and
    indexing the caller's own sentences. Commands show each such message once."""


class CommandError(TextVAEError):
    """A problem with a command's arguments (a missing folder, a wrong flag value)."""
