import pytest

# The builders module holds shared assertions; have pytest explain their failures as it does in test files.
pytest.register_assert_rewrite("tests.functional.builders")
