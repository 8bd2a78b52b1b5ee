from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL_PROPERTIES = ROOT / "conf" / "local" / "application_properties.json"
SANDBOX_DIR = ROOT / ".sandbox"
JAR = ROOT / "target" / "homeflow-connectors.jar"
