/**
 * Runs one task at a time, on demand. A kick while the task runs asks for exactly one more run
 * after it, so every change that arrives is seen by a run that starts after it, and runs never
 * overlap (the coordinator and participants re-derive their next step from the ledger each run).
 */
export class Rerunner {
  private busy = false;
  private again = false;

  constructor(
    private readonly task: () => Promise<void>,
    private readonly onError: (e: Error) => void,
    private readonly stopped: () => boolean,
  ) {}

  kick(): void {
    if (this.stopped()) return;
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    void (async () => {
      do {
        this.again = false;
        try {
          await this.task();
        } catch (e) {
          this.onError(e as Error);
        }
      } while (this.again && !this.stopped());
      this.busy = false;
    })();
  }
}
