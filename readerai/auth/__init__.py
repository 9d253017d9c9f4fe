"""Who is asking: tokens, sign-in codes, and who may reach what."""

from readerai.auth.principal import Principal, Role

__all__ = ["Principal", "Role"]
