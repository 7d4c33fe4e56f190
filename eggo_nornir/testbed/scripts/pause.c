/*
 * pause: the pod sandbox's PID 1 for eggo-nornir's offline bundle.
 * Why our own: no registry is reachable, so registry.k8s.io/pause cannot be pulled.
 * Like the upstream one, it sleeps in pause(), reaps zombies, and exits on SIGTERM or
 * SIGINT. Built with `gcc -static` so the image needs nothing else.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void bye(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction sa = {0};
    sa.sa_handler = bye;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = reap;
    sa.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    for (;;) pause();
    return 0;
}
