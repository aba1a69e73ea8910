// Server errors shown where they belong: problem+json "errors" at their fields, the rest as a
// message. Every form uses this instead of its own copy.
import { reactive } from 'vue'
import { ElMessage } from 'element-plus'

export function useFieldErrors() {
  const errors = reactive({})
  async function run(action) {
    for (const key of Object.keys(errors)) errors[key] = ''
    try {
      return (await action()) ?? true
    } catch (error) {
      const fields = error.fields || {}
      for (const [field, message] of Object.entries(fields)) errors[field] = message
      if (!Object.keys(fields).length) ElMessage.error(error.message || '操作失败')
      else ElMessage.error('请按提示修改标红的字段')
      return false
    }
  }
  return { errors, run }
}
