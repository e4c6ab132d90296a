"""`python -m tests.zoo`: list the zoo's entries."""

from tests.zoo import describe

print(describe())
