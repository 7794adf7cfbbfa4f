"""rc_common: the concepts every layer shares, with one home each.

API paths and object-URL parsing (`rc_common.paths`), time formats and UTC day windows
(`rc_common.timefmt`), table names and keys (`rc_common.tables`), on/off words (`rc_common.flags`). These modules import only
the standard library and nothing from the project, so `rc_extract`, `rc_sandbox` and
`warehouse` can all use them without importing each other.
"""
