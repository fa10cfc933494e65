"""The web form's fixtures (an HR key and tree, an open career-safety wave with links), shared with tests/forms."""

from tests.forms.conftest import form_client, hr, survey  # noqa: F401
