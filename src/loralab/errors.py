"""User-facing errors: the CLI prints these as one clear message, without a traceback."""


class LoralabError(Exception):
    """Bad input or a state the user can fix; the message says what, where and how to fix it."""


class DataError(LoralabError):
    """A problem with input data (audio, manifests, structures), naming the item."""


class ModelLayoutError(LoralabError):
    """A model folder in a layout loralab cannot use as is."""
