"""Sentence pairs (or single sentences) with a label, shared by the tasks that take pairs
(classification, regression): readers of the common layouts (``data``) and tokenising (``encoding``)."""
