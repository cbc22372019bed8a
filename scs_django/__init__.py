"""The standalone server as an installed package: the ``scs-django`` command and its built-in settings."""
