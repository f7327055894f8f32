"""A read-only mapping over built-in entries (loaded from their module on first use) and registered ones.

The registries of architectures and DST methods use it, so listing their names
(the CLI's choices) imports no keras.
"""

import importlib
from collections.abc import Mapping


class LazyRegistry(Mapping):
    """`{name: object}`: built-ins as `name -> (module, attribute)`, plus a dict of registered objects.

    Example:

    >>> view = LazyRegistry("MATH", {"pi": ("math", "pi")}, {})
    >>> list(view), round(view["pi"], 2)
    (['pi'], 3.14)
    """

    def __init__(self, label, builtin, registered):
        self._label = label
        self._builtin = builtin
        self._registered = registered  # the caller's dict: registrations show up here

    def __getitem__(self, name):
        if name in self._registered:
            return self._registered[name]
        if name in self._builtin:
            module, attribute = self._builtin[name]
            return getattr(importlib.import_module(module), attribute)
        raise KeyError(name)

    def __iter__(self):
        return iter([*self._builtin, *self._registered])

    def __len__(self):
        return len(self._builtin) + len(self._registered)

    def __repr__(self):
        return f"{self._label}({', '.join(self)})"


def check_new_entry(kind, name, value, taken, argument, lowercase=True):
    """Refuse a registration: a name that is not a (lower-case) identifier or is taken, or a non-callable value.

    `kind` names the registry in messages ("scheme", "DST method", ...);
    `argument` names the registered value's parameter.
    """
    if not isinstance(name, str) or not name.isidentifier() or (lowercase and name != name.lower()):
        raise ValueError(f"A {kind} name must be a {'lower-case ' if lowercase else ''}identifier; got {name!r}.")
    if name in taken:
        raise ValueError(f"{kind[0].upper()}{kind[1:]} {name!r} exists already; choose another name.")
    if not callable(value):
        raise TypeError(f"`{argument}` must be callable; got {value!r}.")
