"""The training record's schema: one owner for its field names, used by data, losses and training.

A record (JSON lines, ArrayRecord, TFDS; see data/records.py for validation) has the fields
RECORD_FIELDS. Three of them are texts the model embeds, its *roles*: the query, the positive
document and the optional hard-negative document. Batches, teacher embeddings and loss inputs are
keyed by role.
"""

ROLES = ("query", "positive", "negative")
RECORD_FIELDS = ("task", *ROLES, "title", "negative_title", "id")
