"""``tf.app.flags`` / ``tf.flags`` of TF 1.x: command-line flags declared in the script.

``DEFINE_string/integer/float/boolean(name, default, help)`` declare a flag; the first read
of ``FLAGS.<name>`` (or ``tf.app.run``) parses ``--name=value`` / ``--name value`` /
``--[no]flag`` from ``sys.argv``, as absl did, and leaves unknown arguments alone."""

from __future__ import annotations

import argparse
import sys


class _FlagValues:
    def __init__(self):
        object.__setattr__(self, "_parser", argparse.ArgumentParser(add_help=False))
        object.__setattr__(self, "_values", None)

    def _define(self, name, default, help_text, kind):
        if kind is bool:
            self._parser.add_argument(
                f"--{name}",
                dest=name,
                default=default,
                type=lambda s: s.lower() in ("1", "true", "yes"),
                nargs="?",
                const=True,
                help=help_text,
            )
            self._parser.add_argument(f"--no{name}", dest=name, action="store_false")
        else:
            self._parser.add_argument(
                f"--{name}", dest=name, default=default, type=kind, help=help_text
            )
        object.__setattr__(self, "_values", None)  # parse again with the new flag

    def __call__(self, argv):
        """Parse ``argv`` (``tf.app.run`` does this); returns the arguments left over."""
        values, rest = self._parser.parse_known_args(argv[1:])
        object.__setattr__(self, "_values", values)
        return argv[:1] + rest

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if self._values is None:
            self(sys.argv)
        try:
            return getattr(self._values, name)
        except AttributeError:
            raise AttributeError(f"no flag --{name} was defined") from None

    def __setattr__(self, name, value):
        if self._values is None:
            self(sys.argv)
        setattr(self._values, name, value)


FLAGS = _FlagValues()


def DEFINE_string(name, default, help=None, **_):  # noqa: N802, A002 - TF's names
    FLAGS._define(name, default, help, str)


def DEFINE_integer(name, default, help=None, **_):  # noqa: N802, A002
    FLAGS._define(name, default, help, int)


def DEFINE_float(name, default, help=None, **_):  # noqa: N802, A002
    FLAGS._define(name, default, help, float)


def DEFINE_boolean(name, default, help=None, **_):  # noqa: N802, A002
    FLAGS._define(name, default, help, bool)


DEFINE_bool = DEFINE_boolean
