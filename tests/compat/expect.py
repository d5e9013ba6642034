"""The compatibility scripts' shared check: a call must fail with one AWS error."""
from botocore.exceptions import ClientError


def expect_error(code, fn, *args, status=None, **kwargs):
    """Calls fn(*args, **kwargs), which must fail with the AWS error `code` (and the HTTP
    `status`, when given); returns the error's message."""
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        error = e.response["Error"]
        assert error["Code"] == code, f"expected {code}, got {e.response}"
        if status is not None:
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == status, e.response
        return error["Message"]
    raise AssertionError(f"expected {code}, the call succeeded")
