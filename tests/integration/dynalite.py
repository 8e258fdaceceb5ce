"""dynalite (DynamoDB on LevelDB, from npm, pinned in tests/cloud/dynalite) on a free
loopback port, and the SigV4-checking AWS stand-in (tests/cloud/aws_standin.py) in
front of it. Tables are created and items read with boto3 (Debian's python3-boto3)."""
import json
import os
import shutil
import subprocess
import urllib.request

from harness import Proc, free_port, wait_port

HERE = os.path.dirname(os.path.abspath(__file__))
DYNALITE_DIR = os.path.join(HERE, "..", "cloud", "dynalite")
DYNALITE_BIN = os.path.join(DYNALITE_DIR, "node_modules", "dynalite", "cli.js")
STANDIN = os.path.join(HERE, "..", "cloud", "aws_standin.py")
TEST_KEY = ("AKIDDYNALITETEST", "dynalite-test-secret")
TABLE = "visitor-assignments"


def ensure_dynalite():
    """npm ci in tests/cloud/dynalite when node_modules is missing; fails without npm."""
    if not os.path.exists(DYNALITE_BIN):
        npm = shutil.which("npm")
        assert npm, "npm not found: tests/run installs nodejs + npm for dynalite"
        proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=DYNALITE_DIR,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=300)
        assert proc.returncode == 0, "npm ci failed in %s:\n%s" % (DYNALITE_DIR,
                                                                  proc.stdout[-4000:])
    with open(os.path.join(DYNALITE_DIR, "node_modules", "dynalite", "package.json")) as f:
        version = json.load(f)["version"]
    assert version == "4.0.0", "tests/cloud/dynalite holds dynalite %s, expected 4.0.0" % version


class _Server:
    """A loopback server process of ours: args, port, a log in tmpdir; stopped by PID."""
    name = "server"

    def __init__(self, tmpdir, port=None):
        self.tmpdir = str(tmpdir)
        self.port = port or free_port()
        self.proc = None

    def args(self):
        raise NotImplementedError

    def start(self):
        self.proc = Proc(self.args(), os.path.join(self.tmpdir, "%s-%d.log" % (self.name,
                                                                               self.port)))
        wait_port(self.port, timeout=20)
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None


class Dynalite(_Server):
    """dynalite with its data in tmpdir (it survives a restart on the same port)."""
    name = "dynalite"

    def __init__(self, tmpdir, port=None):
        ensure_dynalite()
        super().__init__(tmpdir, port)
        self.path = os.path.join(self.tmpdir, "dynalite-data")

    def args(self):
        return ["node", DYNALITE_BIN, "--port", str(self.port), "--host", "127.0.0.1",
                "--path", self.path, "--createTableMs", "0"]

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def client(self, endpoint=None):
        import boto3
        return boto3.client("dynamodb", endpoint_url=endpoint or self.endpoint,
                            region_name="eu-west-1", aws_access_key_id=TEST_KEY[0],
                            aws_secret_access_key=TEST_KEY[1])

    def create_table(self, name=TABLE, pk="id"):
        c = self.client()
        c.create_table(TableName=name, KeySchema=[{"AttributeName": pk, "KeyType": "HASH"}],
                       AttributeDefinitions=[{"AttributeName": pk, "AttributeType": "S"}],
                       BillingMode="PAY_PER_REQUEST")
        c.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2})
        return name

    def uri(self, table=TABLE, options=""):
        return "dynamo://%s?region=eu-west-1&endpoint=%s%s" % (table, self.endpoint, options)


class AwsStandin(_Server):
    """tests/cloud/aws_standin.py: container endpoint + IMDS + SigV4-checking proxy."""
    name = "aws-standin"

    def __init__(self, tmpdir, upstream_port, lifetime=3600, static=None, auth_token=None):
        super().__init__(tmpdir)
        self.options = ["--upstream", "127.0.0.1:%d" % upstream_port, "--lifetime", str(lifetime)]
        if static:
            self.options += ["--static", "%s:%s" % static]
        if auth_token:
            self.options += ["--auth-token", auth_token]

    def args(self):
        return ["/usr/bin/python3", STANDIN, "--port", str(self.port)] + self.options

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def stats(self):
        with urllib.request.urlopen(self.url + "/_stats", timeout=10) as r:
            return json.loads(r.read())


AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
           "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_REGION", "AWS_DEFAULT_REGION",
           "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
           "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
           "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_EC2_METADATA_SERVICE_ENDPOINT",
           "AWS_EC2_METADATA_DISABLED")


def clean_aws_env(monkeypatch, tmp_path, **values):
    """Only the AWS variables given: nothing from the machine's environment or ~/.aws."""
    for name in AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name, value in values.items():
        monkeypatch.setenv(name, value)
