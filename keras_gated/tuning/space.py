"""Hyperparameter search spaces that the command line can fix or narrow.

A `SearchSpace` is an ordered set of named hyperparameter *definitions*
(`Choice`, `Int`, `Float`, `Boolean`). A hypermodel registers them on a
KerasTuner `HyperParameters` object with `space.get(hp, name)`, which
applies the user's overrides first. Overrides are written as
``name=value`` strings (the `--hp` option of `keras-gated`):

* ``cell=peephole``            fix a value (`Fixed`);
* ``cell=peephole,coupled``    narrow a choice (values are parsed as int,
  float, true/false or text);
* ``units=32:128``             an integer or float range (the type follows
  the default definition; ``units=32:128:32`` gives a step);
* ``learning_rate=1e-4:1e-2:log``   a range sampled on a log scale.

Example:
>>> space = SearchSpace()
>>> space.choice("cell", ["lstm", "peephole"])
>>> space.int("units", 16, 128, step=16, default=64)
>>> space.override(["cell=peephole", "units=32:64"])
>>> # in HyperModel.build(hp): cell = space.get(hp, "cell")
"""

import dataclasses
import math


@dataclasses.dataclass
class HParam:
    """One hyperparameter definition.

    `kind` is "choice", "int", "float", "boolean" or "fixed". Ranges use
    `min_value`, `max_value`, `step`, `sampling` ("linear" or "log") as in
    KerasTuner; choices use `values`; `default` is what `train` (no search)
    uses.
    """

    kind: str
    values: tuple = ()
    min_value: float = None
    max_value: float = None
    step: float = None
    sampling: str = "linear"
    default: object = None

    def register(self, hp, name):
        """Registers this definition on a `keras_tuner.HyperParameters`."""
        if self.kind == "fixed":
            return hp.Fixed(name, self.default)
        if self.kind == "choice":
            default = self.default if self.default in self.values else self.values[0]
            return hp.Choice(name, list(self.values), default=default)
        if self.kind == "boolean":
            return hp.Boolean(name, default=bool(self.default))
        kwargs = dict(min_value=self.min_value, max_value=self.max_value, sampling=self.sampling)
        if self.step is not None:
            kwargs["step"] = self.step
        if self.default is not None and self.min_value <= self.default <= self.max_value:
            kwargs["default"] = self.default
        if self.kind == "int":
            return hp.Int(name, **kwargs)
        return hp.Float(name, **kwargs)

    def describe(self):
        """A short human-readable form, used in `--help`."""
        if self.kind == "fixed":
            return f"{self.default!r}"
        if self.kind == "choice":
            return ",".join(str(v) for v in self.values)
        if self.kind == "boolean":
            return "true,false"
        text = f"{self.min_value}:{self.max_value}"
        if self.step is not None:
            text += f":{self.step}"
        if self.sampling == "log":
            text += ":log"
        return text


def parse_value(text):
    """'3' -> 3, '0.5' -> 0.5, 'true' -> True, anything else stays text."""
    lowered = text.strip().lower()
    if lowered in ("true", "yes"):
        return True
    if lowered in ("false", "no"):
        return False
    try:
        return int(lowered)
    except ValueError:
        pass
    try:
        value = float(lowered)
        if math.isfinite(value):
            return value
    except ValueError:
        pass
    return text.strip()


class SearchSpace:
    """An ordered, overridable set of hyperparameter definitions.

    Tasks start from `GatedHyperModel.default_space()` (the recurrent
    hyperparameters) and add their own with `choice`, `int`, `float`,
    `boolean` or `fixed`, then call `override(...)` with the user's `--hp`
    strings. `get(hp, name)` registers and returns the value for a trial.
    """

    def __init__(self):
        self.definitions = {}
        self.overridden = set()
        # name -> function(value) that raises ValueError for a bad --hp value.
        self.validators = {}

    # Definitions -------------------------------------------------------
    def define(self, name, definition):
        """Adds or replaces a definition (keeps an earlier user override)."""
        if name in self.overridden:
            return self
        self.definitions[name] = definition
        return self

    def choice(self, name, values, default=None):
        return self.define(name, HParam("choice", tuple(values), default=default))

    def int(self, name, min_value, max_value, step=None, sampling="linear", default=None):
        return self.define(
            name, HParam("int", (), min_value, max_value, step, sampling, default)
        )

    def float(self, name, min_value, max_value, step=None, sampling="linear", default=None):
        return self.define(
            name, HParam("float", (), min_value, max_value, step, sampling, default)
        )

    def boolean(self, name, default=False):
        return self.define(name, HParam("boolean", default=default))

    def fixed(self, name, value):
        return self.define(name, HParam("fixed", default=value))

    # Overrides --------------------------------------------------------
    def override(self, items):
        """Applies `--hp` strings such as "cell=peephole,coupled" or "units=32:128".

        Raises:
            ValueError: for a malformed item, an unknown name (the message
                lists the known ones), or a range on a choice.
        """
        for item in items or ():
            for part in _split_items(item):
                name, definition = self._parse(part)
                self.definitions[name] = definition
                self.overridden.add(name)
        return self

    def _parse(self, item):
        if "=" not in item:
            raise ValueError(
                f"Bad --hp {item!r}: write name=value, name=v1,v2 or "
                "name=min:max[:step|:log]."
            )
        name, text = (s.strip() for s in item.split("=", 1))
        if name not in self.definitions:
            raise ValueError(
                f"Unknown hyperparameter {name!r} in --hp. Known: "
                f"{', '.join(self.definitions)}."
            )
        base = self.definitions[name]
        if ":" in text:
            parts = text.split(":")
            if base.kind not in ("int", "float") or len(parts) not in (2, 3):
                raise ValueError(
                    f"Bad --hp {item!r}: a range min:max[:step|:log] needs a "
                    f"numeric hyperparameter; {name} takes {base.describe()}."
                )
            low, high = parse_value(parts[0]), parse_value(parts[1])
            step, sampling = None, "linear"
            if len(parts) == 3:
                if parts[2].strip().lower() == "log":
                    sampling = "log"
                else:
                    step = parse_value(parts[2])
            if not all(isinstance(v, (int, float)) for v in (low, high)) or low > high:
                raise ValueError(f"Bad --hp {item!r}: expected min <= max, two numbers.")
            kind = "int" if base.kind == "int" and isinstance(low, int) and isinstance(high, int) else "float"
            return name, HParam(kind, (), low, high, step, sampling, base.default)
        values = [parse_value(v) for v in text.split(",") if v.strip()]
        if not values:
            raise ValueError(f"Bad --hp {item!r}: no value after '='.")
        # Validated here so that a typo fails before any training.
        for value in values:
            self.validators.get(name, lambda v: v)(value)
        if len(values) == 1:
            return name, HParam("fixed", default=values[0])
        if base.kind == "boolean" and set(values) == {True, False}:
            # KerasTuner's Choice would turn True and False into 1 and 0.
            return name, HParam("boolean", default=base.default)
        return name, HParam("choice", tuple(values), default=values[0])

    def fix_defaults(self):
        """Fixes every hyperparameter the user did not override at its default.

        For grid search: the grid then spans only the `--hp` choices.
        """
        for name, definition in list(self.definitions.items()):
            if name not in self.overridden:
                self.definitions[name] = HParam("fixed", default=self.defaults_of(definition))
        return self

    @staticmethod
    def defaults_of(definition):
        """The value `train` uses for a definition."""
        import keras_tuner

        return definition.register(keras_tuner.HyperParameters(), "x")

    # Use ---------------------------------------------------------------
    def get(self, hp, name):
        """Registers `name` on `hp` (a `keras_tuner.HyperParameters`) and returns its value."""
        if name not in self.definitions:
            raise KeyError(f"{name!r} is not defined in this search space.")
        return self.definitions[name].register(hp, name)

    def defaults(self):
        """Name -> default value (first choice, range default or minimum)."""
        import keras_tuner

        hp = keras_tuner.HyperParameters()
        return {name: self.get(hp, name) for name in self.definitions}

    def describe(self):
        """Lines "name: values" for help texts and docs."""
        return [f"{name}={d.describe()}" for name, d in self.definitions.items()]


def _split_items(item):
    # "cell=lstm,gru;units=32:64" is accepted too, for one quoted argument.
    return [part for part in item.split(";") if part.strip()]
