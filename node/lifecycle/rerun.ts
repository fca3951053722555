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

/**
 * Logs a failure that comes back word for word on every pass once, then once every `every`
 * repeats, and how many times it came when a different one follows: a node whose kernel is down
 * retries its ceremony steps many times a second, and an operator needs the first line and the
 * count, not thousands of copies.
 */
export class RepeatedLog {
  private text = '';
  private again = 0;

  constructor(private readonly log: (line: string) => void, private readonly every: number) {}

  note(line: string): void {
    if (line === this.text) {
      this.again++;
      if (this.again % this.every === 0) this.log(`${line} (again: ${this.again} times since it was first logged)`);
      return;
    }
    if (this.again > 0 && this.again % this.every !== 0) this.log(`(the failure before came ${this.again} more times: ${this.text})`);
    this.text = line;
    this.again = 0;
    this.log(line);
  }
}
