"""The comparison servers the bench starts as separate processes: the tutorial Flask app and the
bare Quart app. Only these modules import Flask or Quart; the bench talks to them over HTTP."""
