"""The Django suite: fernet_sidecar.django in a small project, run by
client/django_test.go with Django's own test runner, once per database
(SQLite, PostgreSQL, MariaDB) and backend (sidecar, in-process):

    python3 -m django test tests.djangotests --pattern 'suite_*.py' --settings tests.djangotests.settings

Its modules are not named test_*.py, so that `unittest discover` of the
client's own tests does not import them without settings.
"""
