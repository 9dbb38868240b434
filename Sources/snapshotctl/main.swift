import SnapshotterCore
print("stub")
