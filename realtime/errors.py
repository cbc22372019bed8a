"""The one error type domain operations raise; callers turn it into their own shape."""


class OperationError(Exception):
    """A request that cannot be carried out. ``code`` is stable, ``hint`` says how to fix it."""

    def __init__(self, code, message, hint=""):
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint

    def as_dict(self):
        result = {"success": False, "error": self.message, "code": self.code}
        if self.hint:
            result["hint"] = self.hint
        return result
