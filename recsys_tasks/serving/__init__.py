"""Scoring with a trained model, the business rules, and the ranked rows a publication holds."""
