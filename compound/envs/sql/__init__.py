"""SQL suite: InterCode-SQL semantics on SQLite copies of Spider databases.

Ids: ``sql/spider-intercode`` (InterCode's sample questions),
``sql/spider-compound`` (this project's task set over the same databases),
``sql/spider-dir`` (your own Spider or BIRD folder: ``path=...``).
Importing this only registers the ids; databases are converted at first use.
"""

from compound.envs.registry import register

_ENTRY_POINT = "compound.envs.sql.env:SqlEnv"

register(
    "sql/spider-intercode",
    _ENTRY_POINT,
    description="InterCode-SQL's sample questions on 20 Spider dev databases (SQLite)",
    kwargs={"source": "intercode"},
)
register(
    "sql/spider-compound",
    _ENTRY_POINT,
    description="compound's own 150+ questions, easy to extra-hard, on the same databases",
    kwargs={"source": "compound"},
)
register(
    "sql/spider-dir",
    _ENTRY_POINT,
    description="questions and SQLite databases from your Spider or BIRD folder (path=...)",
    kwargs={"source": "dir"},
)
