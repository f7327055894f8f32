"""`Registry`: the one shape of every extension point (schemes, DST and pruning methods, architectures, layer
replacements).

A registry is a read-only mapping from name to entry. Built-in entries are protected: they cannot be replaced
or unregistered. A registered name must be new; `unregister` removes only what `register` added. Built-ins
may be given as `Lazy("module", "attribute")`, loaded on first use, so listing a registry's names (the CLI's
choices) imports nothing heavy. Every registry words its errors the same way.

Examples:
    >>> shapes = Registry("shape", {"square": lambda side: side * side})
    >>> shapes.register("triangle", lambda side: side * side / 2)
    >>> list(shapes), shapes.lookup("triangle", "shape")(4)
    (['square', 'triangle'], 8.0)
    >>> shapes.unregister("square")
    Traceback (most recent call last):
    ...
    ValueError: Shape 'square' is built in and cannot be unregistered.
    >>> shapes.unregister("triangle")
"""

import importlib
from collections.abc import Mapping


class Lazy:
    """A built-in entry named by module and attribute, imported the first time it is looked up."""

    def __init__(self, module, attribute):
        self.module = module
        self.attribute = attribute

    def load(self):
        return getattr(importlib.import_module(self.module), self.attribute)


def identifier_key(kind, name, lowercase=True):
    """Refuse a name that is not a (lower-case) Python identifier."""
    if not isinstance(name, str) or not name.isidentifier() or (lowercase and name != name.lower()):
        raise ValueError(f"A {kind} name must be a {'lower-case ' if lowercase else ''}identifier; got {name!r}.")


def callable_entry(kind, entry):
    """Refuse an entry that cannot be called."""
    if not callable(entry):
        raise TypeError(f"A {kind} must be callable; got {entry!r}.")


class Registry(Mapping):
    """`{name: entry}` for one extension point: built-ins protected, registrations checked, one error wording.

    Args:
        kind: what an entry is, for messages ("scheme", "pruning method").
        builtins: `{name: entry or Lazy(...)}`, in the order names are listed.
        check_key: `check_key(kind, name)` raises for a name that cannot be registered (default: a lower-case
            identifier).
        check_entry: `check_entry(kind, entry)` raises for an entry that cannot be registered (default:
            callable).
        reserved: names that are neither built in nor registrable (e.g. the scheme name "dense").
    """

    def __init__(self, kind, builtins=None, *, check_key=identifier_key, check_entry=callable_entry, reserved=()):
        self.kind = kind
        self._builtins = dict(builtins or {})
        self._registered = {}
        self._check_key = check_key
        self._check_entry = check_entry
        self._reserved = frozenset(reserved)

    def __getitem__(self, name):
        if name in self._registered:
            return self._registered[name]
        entry = self._builtins[name]
        if isinstance(entry, Lazy):
            entry = self._builtins[name] = entry.load()
        return entry

    def __iter__(self):
        return iter([*self._builtins, *self._registered])

    def __len__(self):
        return len(self._builtins) + len(self._registered)

    def __contains__(self, name):
        try:
            return name in self._builtins or name in self._registered
        except TypeError:  # an unhashable name is in no registry
            return False

    def __repr__(self):
        return f"Registry({self.kind!r}: {', '.join(map(_label, self))})"

    def is_builtin(self, name):
        return name in self._builtins

    def register(self, name, entry):
        """Add `entry` under `name`; a name that exists (built in or registered) is refused."""
        self._check_key(self.kind, name)
        if name in self or name in self._reserved:
            raise ValueError(f"{self._title()} {_label(name)!r} exists already; choose another name.")
        self._check_entry(self.kind, entry)
        self._registered[name] = entry

    def unregister(self, name):
        """Remove an entry added with `register`; built-ins and unknown names are refused."""
        if name in self._builtins:
            raise ValueError(f"{self._title()} {_label(name)!r} is built in and cannot be unregistered.")
        if name not in self._registered:
            registered = ", ".join(map(_label, self._registered)) or "none"
            raise ValueError(f"No registered {self.kind} {_label(name)!r} to remove; registered: {registered}.")
        del self._registered[name]

    def lookup(self, name, argument):
        """The entry for `name`, or a ValueError naming `argument` and every known name."""
        if name not in self:
            raise ValueError(
                f"Unknown {self.kind} {_label(name)!r} for `{argument}`; expected one of: "
                f"{', '.join(map(_label, self))}."
            )
        return self[name]

    def _title(self):
        return self.kind[0].upper() + self.kind[1:]


def _label(name):
    return name.__name__ if isinstance(name, type) else name
