import java.util.Collection;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.DescribeClusterOptions;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.common.Node;

/**
 * Readiness probe used by services/up.sh:
 *   java -cp 'libs/*:classes' KafkaReady BOOTSTRAP TIMEOUT_SECONDS [BROKER_PID]
 * Polls describeCluster + listTopics until the broker is in the cluster metadata.
 * Exit 0 = ready, 1 = timed out, 3 = the broker process (BROKER_PID) exited meanwhile.
 */
public class KafkaReady {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: KafkaReady BOOTSTRAP TIMEOUT_SECONDS [BROKER_PID]");
            System.exit(2);
        }
        String bootstrap = args[0];
        long deadline = System.currentTimeMillis() + Long.parseLong(args[1]) * 1000L;
        Long pid = args.length > 2 ? Long.valueOf(args[2]) : null;

        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("client.id", "services-up-readiness");
        p.put("request.timeout.ms", "3000");
        p.put("default.api.timeout.ms", "5000");
        p.put("reconnect.backoff.ms", "200");
        p.put("reconnect.backoff.max.ms", "1000");
        p.put("retry.backoff.ms", "200");

        String last = "no attempt made";
        try (Admin admin = Admin.create(p)) {
            while (System.currentTimeMillis() < deadline) {
                if (pid != null && !ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)) {
                    System.err.println("kafka broker process " + pid + " exited (last probe: " + last + ")");
                    System.exit(3);
                }
                try {
                    DescribeClusterResult r = admin.describeCluster(new DescribeClusterOptions().timeoutMs(3000));
                    Collection<Node> nodes = r.nodes().get(4, TimeUnit.SECONDS);
                    String clusterId = r.clusterId().get(4, TimeUnit.SECONDS);
                    if (nodes.isEmpty()) {
                        last = "metadata has no broker yet";
                    } else {
                        int topics = admin.listTopics(new ListTopicsOptions().timeoutMs(3000).listInternal(true))
                                .names().get(4, TimeUnit.SECONDS).size();
                        System.out.println("ready: cluster " + clusterId + ", brokers " + nodes + ", topics " + topics);
                        return;
                    }
                } catch (Exception e) {
                    Throwable c = e.getCause() != null ? e.getCause() : e;
                    last = c.getClass().getSimpleName() + ": " + c.getMessage();
                }
                Thread.sleep(500);
            }
        }
        System.err.println("kafka not ready at " + bootstrap + " after " + args[1] + " s (last probe: " + last + ")");
        System.exit(1);
    }
}
