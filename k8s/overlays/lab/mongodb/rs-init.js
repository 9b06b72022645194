// Lab replica set bootstrap (run by Job mongodb-rs-init with mongosh, connected to mongodb-0 as root).
// Safe to run again: each step first checks whether it was done.
const members = [0, 1, 2].map((i) => ({
  _id: i,
  host: `mongodb-${i}.mongodb:27017`,
  priority: i === 0 ? 2 : 1, // member 0 becomes primary, where this script then creates the user
}));

try {
  rs.status();
  print("replica set rs0 already initiated");
} catch (e) {
  if (e.codeName !== "NotYetInitialized") throw e;
  rs.initiate({ _id: "rs0", members });
  print("replica set rs0 initiated");
}

for (let waited = 0; !db.hello().isWritablePrimary; waited++) {
  if (waited >= 120) throw new Error("mongodb-0 did not become primary within 120 s");
  sleep(1000);
}

const admin = db.getSiblingDB("admin");
const user = process.env.APP_USERNAME;
if (admin.getUser(user) === null) {
  admin.createUser({
    user,
    pwd: process.env.APP_PASSWORD,
    roles: [{ role: "readWrite", db: "secondnum" }],
  });
  print(`user ${user} created`);
} else {
  print(`user ${user} already exists`);
}
