"""Regression: sentence pairs with a numeric score (SICK relatedness, STS-B), a one-output head
trained with mean squared error, Pearson and Spearman correlations."""
