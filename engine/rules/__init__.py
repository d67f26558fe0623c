"""The rule language: pydantic models of the YAML, its loader (errors name file:line), the
condition language and the reference evaluator. Pure: no SQL, no Jinja, no I/O beyond reading
the rule files."""
