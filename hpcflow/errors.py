"""User-facing errors: one class per kind of bad input; the CLI prints them as one line, exit status 2."""


class UserError(Exception):
    """Bad input (job file, CLI argument, HDF5 file, config value).

    The message names the offending key/file and says how to fix it. The CLI prints it on one line and
    exits with status 2, before anything on disk is touched.
    """

    exit_status = 2


class ConfigError(UserError):
    """A job-file or configuration value is missing, unknown, of the wrong type or impossible."""


class InputFileError(UserError):
    """An input file (e.g. HDF5) is missing, unreadable or not of the expected kind."""


class OutputPathError(UserError):
    """An output path exists (and --force was not given) or cannot be written."""


class MissingDependencyError(UserError):
    """An optional dependency is needed; the message carries the exact pip install line."""
