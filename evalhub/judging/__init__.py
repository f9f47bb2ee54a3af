"""Judge records: each automatic judgement of a study's pair, in each order, as it was made (issue #20)."""
