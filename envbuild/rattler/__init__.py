"""py-rattler in a child process, its exit-time crash isolated: the worker, its client, the
package cache stamps and the installed records it writes."""
